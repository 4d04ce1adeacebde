package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/forward"
)

const collectorIdentity = "collector.linkerd-jaeger.serviceaccount.identity.linkerd.cluster.local"

// collector is an OTLP trace receiver over gRPC with mutual TLS, as the jaeger
// extension's collector is reached through its proxy.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	addr string
	mu   sync.Mutex
	// spans are the received spans with their resource attributes and the identity of
	// the proxy that sent them.
	spans []receivedSpan
}

type receivedSpan struct {
	span     *tracepb.Span
	resource map[string]string
	client   string
}

func (c *collector) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	client := ""
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			client = ti.State.PeerCertificates[0].DNSNames[0]
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.Key] = kv.GetValue().GetStringValue()
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.spans = append(c.spans, receivedSpan{span: s, resource: res, client: client})
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (c *collector) received() []receivedSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]receivedSpan(nil), c.spans...)
}

// startCollector serves a collector with the identity collectorIdentity from m's PKI,
// requiring client certificates from it.
func startCollector(t testing.TB, m *meshCP) *collector {
	t.Helper()
	tc, err := m.pki.ServerTLS(collectorIdentity)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(m.pki.Anchor.Cert)
	tc.ClientCAs, tc.ClientAuth = roots, tls.RequireAndVerifyClientCert
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{addr: ln.Addr().String()}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	coltracepb.RegisterTraceServiceServer(srv, c)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return c
}

// traceEnv points proxies at addr, with a labels file as the downward API writes it.
func traceEnv(t testing.TB, addr string) map[string]string {
	labels := filepath.Join(t.TempDir(), "labels")
	if err := os.WriteFile(labels, []byte("app=\"web\"\nlinkerd.io/workload-ns=\"shop\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		config.EnvTraceCollectorAddr:   addr,
		config.EnvTraceCollectorName:   collectorIdentity,
		config.EnvTraceProtocol:        "opentelemetry",
		config.EnvTraceServiceName:     "linkerd-proxy",
		config.EnvTraceAttributesPath:  labels,
		config.EnvTraceExtraAttributes: "k8s.pod.uid=\"1234\"\nk8s.container.name=linkerd-proxy",
	}
}

// contextApp answers with the trace headers it received.
func contextApp(t testing.TB) netip.AddrPort {
	addr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Seen-Traceparent", r.Header.Get("Traceparent"))
		w.Header().Set("Seen-B3-Spanid", r.Header.Get("X-B3-Spanid"))
		w.Header().Set("Seen-B3-Parentspanid", r.Header.Get("X-B3-Parentspanid"))
		w.WriteHeader(http.StatusAccepted)
	}))
	return addr
}

func attrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.GetValue().GetStringValue()
	}
	return m
}

func spanHex(b []byte) string { return hex.EncodeToString(b) }

// TestTracingSpansThroughMeshedPair sends requests with sampled W3C and B3 context
// through a client and a server proxy over mesh TLS: the collector receives the outbound
// (client) span, child of the caller's, and the inbound (server) span, child of the
// outbound one, with Linkerd's names, attributes and resource; the application sees the
// inbound span as its parent.
func TestTracingSpansThroughMeshedPair(t *testing.T) {
	m := startMeshCP(t)
	col := startCollector(t, m)
	client, _ := meshPair(t, m, contextApp(t), traceEnv(t, col.addr))
	_, out, _ := client.Addrs()
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	cases := []struct {
		name    string
		h2      bool
		headers map[string]string
		parent  string
	}{
		{"w3c-http1", false, map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"}, "00f067aa0ba902b7"},
		{"w3c-h2", true, map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b8-03"}, "00f067aa0ba902b8"},
		{"b3-http1", false, map[string]string{"X-B3-TraceId": traceID, "X-B3-SpanId": "a2fb4a1d1a96d312", "X-B3-Sampled": "1"}, "a2fb4a1d1a96d312"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(col.received())
			req, _ := http.NewRequest("GET", "http://"+svc+"/books/1?format=json", nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := clientTo(out, tc.h2).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("status %d", resp.StatusCode)
			}
			var spans []receivedSpan
			eventually.True(t, "two spans at the collector", func() bool {
				spans = col.received()[before:]
				return len(spans) >= 2
			})
			if len(spans) != 2 {
				t.Fatalf("got %d spans, want 2", len(spans))
			}
			var outSpan, inSpan *tracepb.Span
			for _, s := range spans {
				switch s.span.Kind {
				case tracepb.Span_SPAN_KIND_CLIENT:
					outSpan = s.span
					if s.client != clientIdentity {
						t.Errorf("outbound span sent by %q, want %q over mutual TLS", s.client, clientIdentity)
					}
				case tracepb.Span_SPAN_KIND_SERVER:
					inSpan = s.span
					if s.client != serverIdentity {
						t.Errorf("inbound span sent by %q, want %q over mutual TLS", s.client, serverIdentity)
					}
				}
				want := map[string]string{"service.name": "linkerd-proxy", "app": "web", "linkerd.io/workload-ns": "shop",
					"k8s.pod.uid": "1234", "k8s.container.name": "linkerd-proxy"}
				for k, v := range want {
					if s.resource[k] != v {
						t.Errorf("resource %s = %q, want %q (all: %v)", k, s.resource[k], v, s.resource)
					}
				}
			}
			if outSpan == nil || inSpan == nil {
				t.Fatalf("want one client and one server span, got %v", spans)
			}
			for _, s := range []*tracepb.Span{outSpan, inSpan} {
				if got := spanHex(s.TraceId); got != traceID {
					t.Errorf("trace id %s, want %s", got, traceID)
				}
				if s.Name != "/books/1" {
					t.Errorf("span name %q, want the path", s.Name)
				}
				if s.EndTimeUnixNano < s.StartTimeUnixNano || s.StartTimeUnixNano == 0 {
					t.Errorf("span times %d..%d", s.StartTimeUnixNano, s.EndTimeUnixNano)
				}
			}
			if got := spanHex(outSpan.ParentSpanId); got != tc.parent {
				t.Errorf("outbound span's parent %s, want the caller's %s", got, tc.parent)
			}
			if got, want := spanHex(inSpan.ParentSpanId), spanHex(outSpan.SpanId); got != want {
				t.Errorf("inbound span's parent %s, want the outbound span %s", got, want)
			}
			for s, dir := range map[*tracepb.Span]string{outSpan: "outbound", inSpan: "inbound"} {
				want := map[string]string{"http.request.method": "GET", "url.scheme": "http", "url.path": "/books/1",
					"url.query": "format=json", "server.address": "web.ns.svc.cluster.local", "server.port": "80",
					"http.response.status_code": "202", "direction": dir}
				got := attrs(s)
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s span attribute %s = %q, want %q (all: %v)", dir, k, got[k], v, got)
					}
				}
			}
			inID := spanHex(inSpan.SpanId)
			if _, isW3C := tc.headers["traceparent"]; isW3C {
				seen := resp.Header.Get("Seen-Traceparent")
				if want := "00-" + traceID + "-" + inID + "-" + tc.headers["traceparent"][53:]; seen != want {
					t.Errorf("application saw traceparent %q, want %q", seen, want)
				}
			} else {
				if got := resp.Header.Get("Seen-B3-Spanid"); got != inID {
					t.Errorf("application saw X-B3-SpanId %q, want the inbound span %s", got, inID)
				}
				if got, want := resp.Header.Get("Seen-B3-Parentspanid"), spanHex(outSpan.SpanId); got != want {
					t.Errorf("application saw X-B3-ParentSpanId %q, want the outbound span %s", got, want)
				}
			}
		})
	}
}

// TestTracingIgnoresUnsampledRequests checks that requests without context or with an
// unsampled one produce no span and reach the application unchanged: after them, a
// sampled request's two spans are all the collector has.
func TestTracingIgnoresUnsampledRequests(t *testing.T) {
	m := startMeshCP(t)
	col := startCollector(t, m)
	client, _ := meshPair(t, m, contextApp(t), traceEnv(t, col.addr))
	_, out, _ := client.Addrs()
	unsampled := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	for _, h2 := range []bool{false, true} {
		c := clientTo(out, h2)
		for _, hdr := range []map[string]string{nil, {"traceparent": unsampled},
			{"X-B3-TraceId": "4bf92f3577b34da6a3ce929d0e0e4736", "X-B3-SpanId": "a2fb4a1d1a96d312", "X-B3-Sampled": "0"}} {
			req, _ := http.NewRequest("GET", "http://"+svc+"/", nil)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Seen-Traceparent"); got != hdr["traceparent"] {
				t.Errorf("application saw traceparent %q, want %q unchanged", got, hdr["traceparent"])
			}
			if got := resp.Header.Get("Seen-B3-Spanid"); got != hdr["X-B3-SpanId"] {
				t.Errorf("application saw X-B3-SpanId %q, want %q unchanged", got, hdr["X-B3-SpanId"])
			}
		}
	}
	req, _ := http.NewRequest("GET", "http://"+svc+"/marker", nil)
	req.Header.Set("traceparent", strings.TrimSuffix(unsampled, "00")+"01")
	resp, err := clientTo(out, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	eventually.True(t, "the marker's spans", func() bool { return len(col.received()) >= 2 })
	for _, s := range col.received() {
		if s.span.Name != "/marker" {
			t.Errorf("span %q recorded for an unsampled request", s.span.Name)
		}
	}
}

// TestTracingCollectorDown checks that sampled requests are served while the collector
// is unreachable, and that their spans are counted as dropped.
func TestTracingCollectorDown(t *testing.T) {
	m := startMeshCP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there any more
	app := contextApp(t)
	client, server := meshPair(t, m, app, traceEnv(t, down))
	sendSampled(t, client, server, app, false, 20, "the collector down")
	sendSampled(t, client, server, app, true, 20, "the collector down")
	eventually.True(t, "dropped spans to be counted", func() bool {
		return strings.Contains(scrape(t, client), "trace_spans_dropped_total 40\n")
	})
}

// sendSampled sends n requests with sampled trace context to svc through client's
// outbound listener (over HTTP/2 when h2), to server's inbound and app, and fails t
// unless each is answered by the application (202), saying while what, the proxy error
// and its body, and which address is the server proxy and which the application (a
// failed connect names its address).
func sendSampled(t *testing.T, client, server *Proxy, app netip.AddrPort, h2 bool, n int, while string) {
	t.Helper()
	_, out, _ := client.Addrs()
	serverIn, _, _ := server.Addrs()
	c := clientTo(out, h2)
	for range n {
		req, _ := http.NewRequest("GET", "http://"+svc+"/", nil)
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d with %s (h2 %v): %s %q; body %q (server proxy inbound %s, application %s)",
				resp.StatusCode, while, h2, forward.HeaderProxyError, resp.Header.Get(forward.HeaderProxyError), body,
				serverIn, app)
		}
	}
}

// hangingCollector accepts connections and never answers on them (no TLS handshake, no
// Export response), as a collector that is stuck; it returns its address and the number
// of connections accepted so far.
func hangingCollector(t testing.TB) (string, func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}

// TestTracingCollectorHangs checks that sampled requests are served while the collector
// accepts connections and never answers, before and while the exporter waits on it, and
// that their spans are counted as dropped once its calls give up.
func TestTracingCollectorHangs(t *testing.T) {
	m := startMeshCP(t)
	addr, accepted := hangingCollector(t)
	app := contextApp(t)
	client, server := meshPair(t, m, app, traceEnv(t, addr))
	sendSampled(t, client, server, app, false, 20, "the collector hanging")
	// Both proxies' exporters are now connected to the collector and waiting on it.
	eventually.True(t, "both proxies' exporters to connect to the collector", func() bool { return accepted() >= 2 })
	sendSampled(t, client, server, app, true, 20, "the collector hanging")
	eventually.True(t, "dropped spans to be counted", func() bool {
		return strings.Contains(scrape(t, client), "trace_spans_dropped_total 40\n")
	})
	if !strings.Contains(scrape(t, client), "trace_spans_exported_total 0\n") {
		t.Error("spans counted exported by a collector that never answered")
	}
}

// TestTracingConfigErrorsNameTheVariable checks bad tracing settings stop the proxy with
// the variable's name.
func TestTracingConfigErrorsNameTheVariable(t *testing.T) {
	m := startMeshCP(t)
	env := m.env(clientIdentity)
	env[config.EnvTraceCollectorAddr] = "collector.linkerd-jaeger:4317"
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.Load(lookup)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), cfg, Options{Log: testLog()}); err == nil ||
		!strings.Contains(err.Error(), config.EnvTraceCollectorName) {
		t.Errorf("a collector without its identity: got %v, want an error naming %s", err, config.EnvTraceCollectorName)
	}
}
