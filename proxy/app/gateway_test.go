package app

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
	"github.com/l5d-go/l5d/proxy/transportheader"
)

// The multicluster gateway of these tests: its identity, as the multicluster chart's
// ServiceAccount gives it, and the mirror of svc ("web") that a linked cluster's service
// mirror would create, resolved to the gateway.
const (
	gatewayIdentity = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
	mirrorSvc       = "web-east.ns.svc.cluster.local:80"
)

// startGateway starts a proxy in gateway mode for the cluster-local suffix, with no
// fallback destination: it serves nothing but what clients address to it.
func startGateway(t testing.TB, m *meshCP) (*Proxy, netip.AddrPort) {
	t.Helper()
	env := m.env(gatewayIdentity)
	env[config.EnvInboundGatewaySuffixes] = "svc.cluster.local."
	gw := startProxy(t, netip.AddrPort{}, netip.AddrPort{}, env, nil)
	waitReady(t, gw)
	in, _, _ := gw.Addrs()
	return gw, in
}

// meshClient returns an HTTP/1 client whose connections, all to addr, are mesh TLS
// presenting id's certificate (a client proxy seen from the gateway), or TLS without a
// certificate when id is "".
func meshClient(t *testing.T, m *meshCP, addr netip.AddrPort, id string) *http.Client {
	t.Helper()
	cfg := &tls.Config{}
	if id != "" {
		var err error
		if cfg, err = m.pki.ServerTLS(id); err != nil {
			t.Fatal(err)
		}
	}
	cfg.ServerName, cfg.InsecureSkipVerify, cfg.MinVersion = gatewayIdentity, true, tls.VersionTLS13
	tr := &http.Transport{DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		d := &tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", addr.String())
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// TestGatewayForwardsHTTPByAuthority: a client proxy resolves the mirror to the gateway
// with an authority override; its requests (HTTP/1 and HTTP/2 from the application) reach
// the real Service through the gateway over mesh TLS, carrying the Service's name, and
// the Service's proxy sees the gateway's identity. The gateway refuses (fail closed)
// names outside its suffixes, names discovery does not know, names that resolve to
// another gateway, and clients without a mesh identity.
func TestGatewayForwardsHTTPByAuthority(t *testing.T) {
	m := startMeshCP(t)
	app, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s client=%q", r.Host, r.Header.Values("L5d-Client-Id"))
	}))
	client, server := meshPair(t, m, app, nil)
	gw, gwIn := startGateway(t, m)
	m.dst.Set(mirrorSvc, scriptedcp.Endpoint{Addr: gwIn, Identity: gatewayIdentity, H2: true, AuthorityOverride: svc})

	_, out, _ := client.Addrs()
	want := fmt.Sprintf("host=%s client=%q", svc, []string{gatewayIdentity})
	for _, h2 := range []bool{false, true} {
		resp, body := get(t, clientTo(out, h2), "http://"+mirrorSvc+"/books")
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("through the mirror (h2=%v): %d %q, want 200 %q", h2, resp.StatusCode, body, want)
		}
	}
	eventually.True(t, "the server proxy counts the gateway's requests under its identity", func() bool {
		return strings.Contains(scrape(t, server), `client_id="`+gatewayIdentity+`"`)
	})
	eventually.True(t, "the client proxy counts its requests to the gateway under the mirror's name", func() bool {
		return strings.Contains(scrape(t, client), `authority="`+mirrorSvc+`"`) &&
			strings.Contains(scrape(t, client), `server_id="`+gatewayIdentity+`"`)
	})
	eventually.True(t, "the gateway counts the forwarded requests under the Service's name", func() bool {
		return strings.Contains(scrape(t, gw), `response_total{direction="outbound",authority="`+svc+`"`)
	})
	// As Linkerd's gateway, it counts the requests it serves inbound too, under the
	// client's identity (linkerd viz stat and multicluster gateways read them).
	inboundServed := func(n int) bool {
		m := scrape(t, gw)
		return hasLine(m, `request_total{direction="inbound",authority="`+svc+`",`, `tls="true",client_id="`+clientIdentity+`"} `+fmt.Sprint(n)) &&
			hasLine(m, `response_total{direction="inbound",authority="`+svc+`",`,
				`tls="true",client_id="`+clientIdentity+`",status_code="200",classification="success"} `+fmt.Sprint(n))
	}
	eventually.True(t, "the gateway counts the requests it serves inbound under the client's identity", func() bool { return inboundServed(2) })

	// A client proxy talking to the gateway directly.
	direct := meshClient(t, m, gwIn, clientIdentity)
	call := func(host string) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest("GET", "https://gateway/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, body := do(t, direct, req)
		return resp.StatusCode, resp.Header.Get("L5d-Proxy-Error"), body
	}
	if status, _, body := call(svc); status != 200 || body != fmt.Sprintf("host=%s client=%q", svc, []string{gatewayIdentity}) {
		t.Errorf("a direct request naming %s: %d %q", svc, status, body)
	}
	for _, c := range []struct {
		host   string
		status int
		why    string
	}{
		{"web.ns.svc.other.example:80", 403, "not in the gateway's suffixes"},
		{"web.ns.svc.cluster.local.evil.example:80", 403, "not in the gateway's suffixes"},
		{"svc.cluster.local:80", 403, "not in the gateway's suffixes"},
		{"web.ns.svc.cluster.local", 400, "is not name:port"},
		{"nothing.ns.svc.cluster.local:80", 404, "no Service nothing.ns.svc.cluster.local:80"},
		{mirrorSvc, 403, "resolves to another gateway"},
	} {
		status, why, _ := call(c.host)
		if status != c.status || !strings.Contains(why, c.why) {
			t.Errorf("a request naming %q: %d %q, want %d saying %q", c.host, status, why, c.status, c.why)
		}
	}

	// As Linkerd's clients do: a transport header naming the Service with the HTTP/1
	// session protocol, then requests.
	tc := transportDialTo(t, m, gwIn, gatewayIdentity, clientIdentity, transportheader.Header{Port: 80, Name: "web.ns.svc.cluster.local", Protocol: transportheader.HTTP1})
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(tc, "GET /x HTTP/1.1\r\nHost: web.ns.svc.cluster.local:80\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	tc.Close()
	if resp.StatusCode != 200 || string(b) != fmt.Sprintf("host=%s client=%q", svc, []string{gatewayIdentity}) {
		t.Errorf("a transport header naming %s with HTTP/1: %d %q", svc, resp.StatusCode, b)
	}
	// Each request counted once: the two through the client proxy, the direct one and
	// the transported HTTP/1 one; a refusal is counted with its status.
	eventually.True(t, "every request served counted inbound once", func() bool { return inboundServed(4) })
	if m := scrape(t, gw); !hasLine(m, `response_total{direction="inbound",authority="nothing.ns.svc.cluster.local:80",`,
		`client_id="`+clientIdentity+`",status_code="404",`) {
		t.Errorf("the gateway did not count its 404 inbound:\n%s", grepLines(m, `response_total{direction="inbound"`))
	}

	// Without a mesh identity nothing is served: TLS without a client certificate, or
	// plaintext.
	if resp, err := meshClient(t, m, gwIn, "").Get("https://gateway/"); err == nil {
		resp.Body.Close()
		t.Errorf("a TLS client without a certificate got %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+svc+"/", nil)
	if resp, err := clientTo(gwIn, false).Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("a plaintext client got %d", resp.StatusCode)
	}
}

// TestGatewayDeniedByPolicy: the gateway port's policy applies to the clients it
// forwards for: with a policy denying everyone, a meshed client's request is refused
// (403) and never forwarded.
func TestGatewayDeniedByPolicy(t *testing.T) {
	m := startMeshCP(t)
	env := m.env(gatewayIdentity)
	env[config.EnvInboundGatewaySuffixes] = "svc.cluster.local."
	env[config.EnvInboundDefaultPolicy] = "deny"
	gw := startProxy(t, netip.AddrPort{}, netip.AddrPort{}, env, nil)
	waitReady(t, gw)
	gwIn, _, _ := gw.Addrs()
	reached := make(chan struct{}, 1)
	app, _ := serveHTTP(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached <- struct{}{} }))
	m.dst.Set(svc, scriptedcp.Endpoint{Addr: app})
	req, _ := http.NewRequest("GET", "https://gateway/", nil)
	req.Host = svc
	resp, _ := do(t, meshClient(t, m, gwIn, clientIdentity), req)
	if resp.StatusCode != 403 {
		t.Errorf("status %d, want 403", resp.StatusCode)
	}
	select {
	case <-reached:
		t.Error("a refused request reached the Service")
	default:
	}
}

// TestGatewayForwardsOpaqueByTransportHeader: an opaque connection to the mirror goes
// from the client proxy to the gateway over mesh TLS with a transport header naming the
// Service (the authority override), and the gateway relays it, over the opaque transport,
// to the Service's proxy, which sees the gateway's identity. A header naming a Service
// outside the suffixes is refused by the gateway, and any header naming a Service by a
// proxy that is not a gateway.
func TestGatewayForwardsOpaqueByTransportHeader(t *testing.T) {
	m := startMeshCP(t)
	app := greeterApp(t)
	server := startProxy(t, netip.AddrPort{}, netip.AddrPort{}, m.env(serverIdentity), nil)
	waitReady(t, server)
	serverIn, _, _ := server.Addrs()
	_, gwIn := startGateway(t, m)

	// The mirror's address (never dialled: discovery resolves it to the gateway).
	mirror := netip.MustParseAddrPort("127.0.0.1:9")
	remote := fmt.Sprintf("web.ns.svc.cluster.local:%d", app.Port())
	m.dst.SetProfile(mirror.String(), &destination.DestinationProfile{FullyQualifiedName: "web-east.ns.svc.cluster.local.", OpaqueProtocol: true})
	m.dst.Set(fmt.Sprintf("web-east.ns.svc.cluster.local:%d", mirror.Port()),
		scriptedcp.Endpoint{Addr: gwIn, Identity: gatewayIdentity, OpaqueTransport: gwIn.Port(), AuthorityOverride: remote})
	m.dst.Set(remote, scriptedcp.Endpoint{Addr: app, Identity: serverIdentity, OpaqueTransport: serverIn.Port()})

	clientEnv := m.env(clientIdentity)
	clientEnv[config.EnvDestinationProfileNetworks] = "127.0.0.0/8"
	clientEnv[config.EnvOutboundDetectTimeout] = "20s"
	client := startProxy(t, mirror, netip.AddrPort{}, clientEnv, nil)
	waitReady(t, client)
	_, out, _ := client.Addrs()
	c, err := net.Dial("tcp", out.String())
	if err != nil {
		t.Fatal(err)
	}
	expectGreetingAndEcho(t, c)
	c.Close()
	eventually.True(t, "the server proxy sees the gateway's identity", func() bool {
		return strings.Contains(scrape(t, server), `tcp_open_total{direction="inbound",peer="src",target_addr="`+app.String()+`",target_ip="127.0.0.1",tls="true",client_id="`+gatewayIdentity+`"} 1`)
	})

	dial := func(to netip.AddrPort, name string, port uint16) net.Conn {
		t.Helper()
		serverName := gatewayIdentity
		if to == serverIn {
			serverName = serverIdentity
		}
		return transportDialTo(t, m, to, serverName, clientIdentity, transportheader.Header{Port: port, Name: name})
	}
	good := dial(gwIn, "web.ns.svc.cluster.local", app.Port())
	expectGreetingAndEcho(t, good)
	good.Close()
	for _, bad := range []struct {
		to   netip.AddrPort
		name string
	}{
		{gwIn, "web.ns.svc.other.example"},
		{gwIn, "nothing.ns.svc.cluster.local"},
		{serverIn, "web.ns.svc.cluster.local"},
	} {
		bc := dial(bad.to, bad.name, app.Port())
		bc.SetDeadline(time.Now().Add(10 * time.Second))
		if n, err := io.ReadFull(bc, make([]byte, 1)); err == nil {
			t.Errorf("a header naming %s to %s got %d bytes back", bad.name, bad.to, n)
		}
		bc.Close()
	}
}
