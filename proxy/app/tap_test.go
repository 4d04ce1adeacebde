package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/l5d-go/l5d/pkg/eventually"
	pbhttp "github.com/l5d-go/l5d/proto/gen/httptypes"
	pb "github.com/l5d-go/l5d/proto/gen/tap"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

const tapIdentity = "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local"

// tapEnv makes a proxy serve tap on a loopback port to tapIdentity.
var tapEnv = map[string]string{
	config.EnvTapName:           tapIdentity,
	config.EnvControlListenAddr: "127.0.0.1:0",
}

// tapApp answers with its body "tapped", and, under /grpc, as a gRPC server failing
// with status 7 (a trailers-only response).
func tapApp(t *testing.T) netip.AddrPort {
	addr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.HasPrefix(r.URL.Path, "/grpc") {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "7")
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("X-App", "yes")
		io.WriteString(w, "tapped")
	}))
	return addr
}

// tapMesh is a client proxy and a server proxy in front of tapApp, both serving tap to
// tapIdentity; discovery gives the server's endpoint the labels of deployment web.
func tapMesh(t *testing.T) (m *meshCP, client, server *Proxy) {
	m, client, server, _ = tapMeshApp(t)
	return m, client, server
}

func tapMeshApp(t *testing.T) (m *meshCP, client, server *Proxy, app netip.AddrPort) {
	m = startMeshCP(t)
	app = tapApp(t)
	client, server = meshPair(t, m, app, tapEnv)
	serverIn, _, _ := server.Addrs()
	m.dst.Set(svc, scriptedcp.Endpoint{Addr: serverIn, Identity: serverIdentity, H2: true,
		Labels: map[string]string{"deployment": "web", "namespace": "ns"}})
	return m, client, server, app
}

func dstLabel(k, v string) *pb.ObserveRequest_Match {
	return &pb.ObserveRequest_Match{Match: &pb.ObserveRequest_Match_DestinationLabel{
		DestinationLabel: &pb.ObserveRequest_Match_Label{Key: k, Value: v}}}
}

// tapClient connects to the tap server of p (whose identity is name) with a certificate
// for identity (none when empty), or in plaintext when plain is set.
func tapClient(t testing.TB, m *meshCP, p *Proxy, name, identity string, plain bool, opts ...grpc.DialOption) pb.TapClient {
	t.Helper()
	creds := insecure.NewCredentials()
	if !plain {
		roots := x509.NewCertPool()
		roots.AddCert(m.pki.Anchor.Cert)
		cfg := &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS13}
		if identity != "" {
			own, err := m.pki.ServerTLS(identity)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = own.Certificates
		}
		creds = credentials.NewTLS(cfg)
	}
	cc, err := grpc.NewClient(p.TapAddr().String(), append(opts, grpc.WithTransportCredentials(creds))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewTapClient(cc)
}

// observe opens a tap session on p and waits until the proxy has it open.
func observe(t testing.TB, c pb.TapClient, p *Proxy, req *pb.ObserveRequest) pb.Tap_ObserveClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	before := p.tapHubSessions()
	stream, err := c.Observe(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the tap session to open", func() bool { return p.tapHubSessions() > before })
	return stream
}

// tapHubSessions reads the tap_sessions gauge.
func (p *Proxy) tapHubSessions() int {
	var sb strings.Builder
	p.Metrics.WriteTo(&sb)
	for l := range strings.Lines(sb.String()) {
		var n int
		if _, err := fmt.Sscanf(l, "tap_sessions %d", &n); err == nil {
			return n
		}
	}
	return -1
}

func pathPrefix(p string) *pb.ObserveRequest_Match {
	return &pb.ObserveRequest_Match{Match: &pb.ObserveRequest_Match_Http_{Http: &pb.ObserveRequest_Match_Http{
		Match: &pb.ObserveRequest_Match_Http_Path{Path: &pb.ObserveRequest_Match_Http_StringMatch{
			Match: &pb.ObserveRequest_Match_Http_StringMatch_Prefix{Prefix: p}}}}}}
}

func methodIs(m pbhttp.HttpMethod_Registered) *pb.ObserveRequest_Match {
	return &pb.ObserveRequest_Match{Match: &pb.ObserveRequest_Match_Http_{Http: &pb.ObserveRequest_Match_Http{
		Match: &pb.ObserveRequest_Match_Http_Method{Method: &pbhttp.HttpMethod{
			Type: &pbhttp.HttpMethod_Registered_{Registered: m}}}}}}
}

func all(ms ...*pb.ObserveRequest_Match) *pb.ObserveRequest_Match {
	return &pb.ObserveRequest_Match{Match: &pb.ObserveRequest_Match_All{All: &pb.ObserveRequest_Match_Seq{Matches: ms}}}
}

func anyOf(ms ...*pb.ObserveRequest_Match) *pb.ObserveRequest_Match {
	return &pb.ObserveRequest_Match{Match: &pb.ObserveRequest_Match_Any{Any: &pb.ObserveRequest_Match_Seq{Matches: ms}}}
}

var withHeaders = &pb.ObserveRequest_Extract{Extract: &pb.ObserveRequest_Extract_Http_{Http: &pb.ObserveRequest_Extract_Http{
	Extract: &pb.ObserveRequest_Extract_Http_Headers_{Headers: &pb.ObserveRequest_Extract_Http_Headers{}}}}}

// send makes a request through the client proxy's outbound listener.
func send(t *testing.T, client *Proxy, method, path string) {
	t.Helper()
	_, out, _ := client.Addrs()
	req, _ := http.NewRequest(method, "http://"+svc+path, nil)
	resp, err := clientTo(out, false).Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// exchange is the three events of one tapped request.
type exchange struct{ req, rsp, end *pb.TapEvent }

func recvExchange(t *testing.T, s pb.Tap_ObserveClient) exchange {
	t.Helper()
	var x exchange
	for _, dst := range []**pb.TapEvent{&x.req, &x.rsp, &x.end} {
		ev, err := s.Recv()
		if err != nil {
			t.Fatalf("receiving a tap event: %v", err)
		}
		*dst = ev
	}
	if x.req.GetHttp().GetRequestInit() == nil || x.rsp.GetHttp().GetResponseInit() == nil || x.end.GetHttp().GetResponseEnd() == nil {
		t.Fatalf("events out of order: %v / %v / %v", x.req, x.rsp, x.end)
	}
	return x
}

func header(h *pbhttp.Headers, name string) string {
	for _, f := range h.GetHeaders() {
		if strings.EqualFold(f.GetName(), name) {
			return string(f.GetValue())
		}
	}
	return ""
}

func TestTapSeesExactlyTheMatchingRequests(t *testing.T) {
	m, client, server, app := tapMeshApp(t)
	match := all(pathPrefix("/tapped"), methodIs(pbhttp.HttpMethod_GET))
	in := observe(t, tapClient(t, m, server, serverIdentity, tapIdentity, false), server,
		&pb.ObserveRequest{Match: match, Extract: withHeaders})
	out := observe(t, tapClient(t, m, client, clientIdentity, tapIdentity, false), client,
		&pb.ObserveRequest{Match: all(match, dstLabel("deployment", "web"))})
	other := observe(t, tapClient(t, m, client, clientIdentity, tapIdentity, false), client,
		&pb.ObserveRequest{Match: anyOf(dstLabel("deployment", "other"), pathPrefix("/marker"))})
	// Requests go to the labelled endpoint once the client proxy has the update.
	eventually.True(t, "the labelled endpoint", func() bool {
		send(t, client, "GET", "/warmup")
		return strings.Contains(scrape(t, client), `dst_deployment="web"`)
	})

	send(t, client, "GET", "/tapped/a")
	send(t, client, "GET", "/other")
	send(t, client, "POST", "/tapped/b")
	send(t, client, "GET", "/tapped/c")

	serverIn, _, _ := server.Addrs()
	for _, path := range []string{"/tapped/a", "/tapped/c"} {
		x := recvExchange(t, in)
		ri := x.req.GetHttp().GetRequestInit()
		if ri.GetPath() != path || ri.GetMethod().GetRegistered() != pbhttp.HttpMethod_GET || ri.GetAuthority() != svc {
			t.Errorf("inbound request-init %v, want GET %s %s", ri, svc, path)
		}
		if x.req.GetProxyDirection() != pb.TapEvent_INBOUND {
			t.Errorf("direction %v, want INBOUND", x.req.GetProxyDirection())
		}
		if l := x.req.GetSourceMeta().GetLabels(); l["tls"] != "true" || l["client_id"] != clientIdentity {
			t.Errorf("source labels %v, want tls=true client_id=%s", l, clientIdentity)
		}
		if dst, _ := netconv.AddrPort(x.req.GetDestination()); dst != app {
			t.Errorf("inbound destination %v, want the application %v", dst, app)
		}
		if ri.GetHeaders() == nil {
			t.Error("request headers not extracted")
		}
		if st := x.rsp.GetHttp().GetResponseInit(); st.GetHttpStatus() != 200 || header(st.GetHeaders(), "X-App") != "yes" {
			t.Errorf("response-init %v, want 200 with X-App", st)
		}
		end := x.end.GetHttp().GetResponseEnd()
		if end.GetResponseBytes() != uint64(len("tapped")) || end.GetEos() != nil {
			t.Errorf("response-end %v, want %d bytes, no eos", end, len("tapped"))
		}
		if end.GetSinceRequestInit().AsDuration() < x.rsp.GetHttp().GetResponseInit().GetSinceRequestInit().AsDuration() {
			t.Errorf("response ends before it starts: %v", end)
		}
		ox := recvExchange(t, out)
		ori := ox.req.GetHttp().GetRequestInit()
		if ori.GetPath() != path || ox.req.GetProxyDirection() != pb.TapEvent_OUTBOUND || ori.GetHeaders() != nil {
			t.Errorf("outbound request-init %v (%v), want %s without headers", ori, ox.req.GetProxyDirection(), path)
		}
		if ox.rsp.GetHttp().GetResponseInit().GetHttpStatus() != 200 {
			t.Errorf("outbound response-init %v", ox.rsp)
		}
		if dst, _ := netconv.AddrPort(ox.req.GetDestination()); dst != serverIn {
			t.Errorf("outbound destination %v, want the endpoint %v", dst, serverIn)
		}
		if l := ox.req.GetDestinationMeta().GetLabels(); l["tls"] != "true" || l["server_id"] != serverIdentity || l["namespace"] != "ns" {
			t.Errorf("outbound destination labels %v, want tls=true server_id=%s namespace=ns", l, serverIdentity)
		}
		if l := ox.req.GetSourceMeta().GetLabels(); l["tls"] != "loopback" {
			t.Errorf("outbound source labels %v, want tls=loopback", l)
		}
	}
	// The next events are those of a later matching request: nothing else was tapped.
	send(t, client, "GET", "/tapped/grpc")
	if p := recvExchange(t, in).req.GetHttp().GetRequestInit().GetPath(); p != "/tapped/grpc" {
		t.Errorf("inbound: unexpected tapped request %s", p)
	}
	if p := recvExchange(t, out).req.GetHttp().GetRequestInit().GetPath(); p != "/tapped/grpc" {
		t.Errorf("outbound: unexpected tapped request %s", p)
	}
	// The session selecting another deployment saw none of them: its first request is
	// the marker.
	send(t, client, "GET", "/marker")
	if p := recvExchange(t, other).req.GetHttp().GetRequestInit().GetPath(); p != "/marker" {
		t.Errorf("a session selecting another deployment saw %s", p)
	}
}

func TestTapReportsGRPCStatus(t *testing.T) {
	m, client, server := tapMesh(t)
	in := observe(t, tapClient(t, m, server, serverIdentity, tapIdentity, false), server, &pb.ObserveRequest{Match: pathPrefix("/grpc")})
	send(t, client, "POST", "/grpc/svc/Method")
	x := recvExchange(t, in)
	if code := x.end.GetHttp().GetResponseEnd().GetEos().GetGrpcStatusCode(); code != 7 {
		t.Errorf("response-end %v, want grpc status 7", x.end)
	}
}

func TestTapRefusesOtherClients(t *testing.T) {
	m, _, server := tapMesh(t)
	for _, tc := range []struct {
		name, identity string
		plain          bool
		reason         string
	}{
		{"other identity", clientIdentity, false, "unauthorized"},
		{"no certificate", "", false, "no_identity"},
		{"plaintext", "", true, "tls_handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tapClient(t, m, server, serverIdentity, tc.identity, tc.plain)
			stream, err := c.Observe(context.Background(), &pb.ObserveRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			if err == nil {
				t.Fatal("tap client was not refused")
			}
			want := `tap_refused_total{reason="` + tc.reason + `"}`
			eventually.True(t, want, func() bool {
				return strings.Contains(scrape(t, server), want)
			})
		})
	}
	if n := server.tapHubSessions(); n != 0 {
		t.Errorf("%d tap sessions open after refusals", n)
	}
}

func TestTapLimitEndsTheStream(t *testing.T) {
	m, client, server := tapMesh(t)
	in := observe(t, tapClient(t, m, server, serverIdentity, tapIdentity, false), server, &pb.ObserveRequest{Limit: 2})
	for range 3 {
		send(t, client, "GET", "/")
	}
	recvExchange(t, in)
	recvExchange(t, in)
	if ev, err := in.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the limit: %v, %v; want the end of the stream", ev, err)
	}
	eventually.True(t, "the session to close", func() bool { return server.tapHubSessions() == 0 })
}

// A tap client that never reads loses events, counted, while the traffic it observes
// goes on: every request completes.
func TestSlowTapReaderNeverSlowsTraffic(t *testing.T) {
	m, client, server := tapMesh(t)
	// A fixed flow-control window (no BDP growth) bounds what gRPC itself buffers, well
	// below the events of the traffic, so the session's buffer fills.
	observe(t, tapClient(t, m, server, serverIdentity, tapIdentity, false, grpc.WithInitialWindowSize(64<<10)),
		server, &pb.ObserveRequest{})
	const workers, each = 4, 500
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				send(t, client, "GET", "/")
			}
		})
	}
	wg.Wait()
	if !strings.Contains(scrape(t, server), "tap_event_dropped_total ") || strings.Contains(scrape(t, server), "tap_event_dropped_total 0\n") {
		t.Errorf("no dropped events counted:\n%s", grepLines(scrape(t, server), "tap_"))
	}
}

func TestTapRejectsABadMatch(t *testing.T) {
	m, _, server := tapMesh(t)
	c := tapClient(t, m, server, serverIdentity, tapIdentity, false)
	bad := &pb.ObserveRequest_Match{Match: &pb.ObserveRequest_Match_Destination{Destination: &pb.ObserveRequest_Match_Tcp{
		Match: &pb.ObserveRequest_Match_Tcp_Ports{Ports: &pb.ObserveRequest_Match_Tcp_PortRange{Min: 9000, Max: 80}}}}}
	stream, err := c.Observe(context.Background(), &pb.ObserveRequest{Match: bad})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ports: invalid range 9000-80") {
		t.Fatalf("Observe with an inverted port range: %v, want InvalidArgument naming it", err)
	}
}
