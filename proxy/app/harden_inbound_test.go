package app

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/transportheader"
)

// portPolicies serves InboundServerPolicies.WatchPort with one answer per port (def for
// the others). Until release is closed, no answer is sent at all: the controller is slow.
type portPolicies struct {
	inbound.UnimplementedInboundServerPoliciesServer
	byPort  map[uint32]*inbound.Server
	def     *inbound.Server
	release chan struct{}

	mu      sync.Mutex
	watched map[uint32]int
}

func newPortPolicies(def *inbound.Server) *portPolicies {
	return &portPolicies{byPort: map[uint32]*inbound.Server{}, def: def, release: make(chan struct{}), watched: map[uint32]int{}}
}

func (s *portPolicies) WatchPort(spec *inbound.PortSpec, stream grpc.ServerStreamingServer[inbound.Server]) error {
	s.mu.Lock()
	s.watched[spec.GetPort()]++
	s.mu.Unlock()
	select {
	case <-s.release:
	case <-stream.Context().Done():
		return nil
	}
	srv := s.byPort[spec.GetPort()]
	if srv == nil {
		srv = s.def
	}
	if err := stream.Send(srv); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// watches returns how many watches of port the controller received.
func (s *portPolicies) watches(port uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.watched[uint32(port)]
}

// denyAll is a Server that authorizes nobody.
func denyAll() *inbound.Server {
	return &inbound.Server{Labels: map[string]string{"kind": "server", "name": "deny-all"}}
}

// allowAll is a Detect Server that authorizes everyone, without routes of its own.
func allowAll() *inbound.Server {
	return &inbound.Server{Labels: map[string]string{"kind": "server", "name": "allow-all"},
		Authorizations: []*inbound.Authz{unauthenticated()}}
}

// transportDial opens mesh TLS to addr (the server proxy's inbound port) with the opaque
// transport's ALPN, presenting the certificate of identity id ("" for none), and sends h.
func transportDial(t *testing.T, m *meshCP, addr netip.AddrPort, id string, h transportheader.Header) net.Conn {
	t.Helper()
	return transportDialTo(t, m, addr, serverIdentity, id, h)
}

// transportDialTo is transportDial to a proxy whose identity is serverName.
func transportDialTo(t *testing.T, m *meshCP, addr netip.AddrPort, serverName, id string, h transportheader.Header) net.Conn {
	t.Helper()
	cfg := &tls.Config{}
	if id != "" {
		var err error
		if cfg, err = m.pki.ServerTLS(id); err != nil {
			t.Fatal(err)
		}
	}
	cfg.ServerName, cfg.InsecureSkipVerify, cfg.NextProtos, cfg.MinVersion = serverName, true, []string{transportheader.ALPN}, tls.VersionTLS13
	tc, err := tls.Dial("tcp", addr.String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != transportheader.ALPN {
		t.Fatalf("negotiated %q", got)
	}
	if _, err := tc.Write(h.Append(nil)); err != nil {
		t.Fatal(err)
	}
	return tc
}

// readAll returns what c sends until it closes (or 10s pass).
func readAll(c net.Conn) string {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

func adminGet(t *testing.T, admin netip.AddrPort, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin.String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestTransportHeaderHardening: the opaque transport header is only honoured for a client
// with a verified mesh identity, never for the proxy's own ports, and the policy of the
// port it names applies.
func TestTransportHeaderHardening(t *testing.T) {
	m := startMeshCP(t)
	allowed, denied := greeterApp(t), greeterApp(t)
	pol := newPortPolicies(denyAll())
	pol.byPort[uint32(allowed.Port())] = &inbound.Server{Labels: map[string]string{"kind": "server", "name": "allowed"},
		Authorizations: []*inbound.Authz{identityAuthz("client-authz", clientIdentity)}}
	pol.byPort[uint32(denied.Port())] = denyAll()
	close(pol.release)
	env := m.env(serverIdentity)
	for k, v := range startPolicyService(t, m, pol) {
		env[k] = v
	}
	env[config.EnvShutdownEndpointEnabled] = "true"
	env[config.EnvLog] = "info"
	server := startProxy(t, netip.AddrPort{}, netip.AddrPort{}, env, nil)
	waitReady(t, server)
	serverIn, serverOut, admin := server.Addrs()

	// The allowed case: a meshed client naming an authorized port reaches it.
	c := transportDial(t, m, serverIn, clientIdentity, transportheader.Header{Port: allowed.Port()})
	expectGreetingAndEcho(t, c)
	c.Close()

	attack := "PUT /proxy-log-level HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\ndebug" +
		"POST /shutdown HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
	for _, tc := range []struct {
		name string
		id   string
		h    transportheader.Header
	}{
		{"no client certificate, admin port, opaque", "", transportheader.Header{Port: admin.Port()}},
		{"no client certificate, admin port, HTTP/1", "", transportheader.Header{Port: admin.Port(), Protocol: transportheader.HTTP1}},
		{"no client certificate, allowed app port", "", transportheader.Header{Port: allowed.Port()}},
		{"meshed client, admin port, opaque", clientIdentity, transportheader.Header{Port: admin.Port()}},
		{"meshed client, admin port, HTTP/1", clientIdentity, transportheader.Header{Port: admin.Port(), Protocol: transportheader.HTTP1}},
		{"meshed client, outbound port", clientIdentity, transportheader.Header{Port: serverOut.Port()}},
		{"meshed client, control port", clientIdentity, transportheader.Header{Port: 4190}},
		{"meshed client, denied port", clientIdentity, transportheader.Header{Port: denied.Port()}},
	} {
		c := transportDial(t, m, serverIn, tc.id, tc.h)
		io.WriteString(c, attack)
		if got := readAll(c); got != "" {
			t.Errorf("%s: the connection was served: %q", tc.name, got)
		}
		c.Close()
	}
	if got := adminGet(t, admin, "/proxy-log-level"); got != "info\n" {
		t.Fatalf("the log level changed through the transport: %q", got)
	}
	select {
	case <-server.Done():
		t.Fatal("the proxy was shut down through the transport")
	default:
	}
	// The proxy still serves the allowed case.
	c = transportDial(t, m, serverIn, clientIdentity, transportheader.Header{Port: allowed.Port()})
	expectGreetingAndEcho(t, c)
	c.Close()
	if sm := scrape(t, server); !hasLine(sm, "inbound_tcp_authz_deny_total{", `,srv_kind="server",srv_name="deny-all"}`) {
		t.Fatalf("the denied port's refusal is not counted:\n%s", grepLines(sm, "authz"))
	}
}

// TestInboundPolicyFailsClosed: with a policy controller configured, a port's traffic is
// not served before the controller has given the port's policy: a controller that does
// not answer keeps the port closed (the connection is held for the detection timeout,
// then refused) and the proxy not ready; once the answers come, the proxy is ready and
// each port's policy applies.
func TestInboundPolicyFailsClosed(t *testing.T) {
	m := startMeshCP(t)
	app := namedApp(t, "app")
	pol := newPortPolicies(denyAll())
	pol.byPort[uint32(app.Port())] = allowAll()
	env := m.env(serverIdentity)
	for k, v := range startPolicyService(t, m, pol) {
		env[k] = v
	}
	env[config.EnvInboundDefaultPolicy] = "all-unauthenticated"
	env[config.EnvInboundPorts] = strconv.Itoa(int(app.Port()))
	// Bounds how long a connection waits for its port's policy.
	env[config.EnvInboundDetectTimeout] = "200ms"
	server := startProxy(t, netip.AddrPort{}, app, env, nil)
	serverIn, _, admin := server.Addrs()
	c := clientTo(serverIn, false)
	if resp, err := c.Get("http://" + serverIn.String() + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("a request was answered %d before the port's policy was known", resp.StatusCode)
	}
	// The watch is opened at start-up over mesh TLS: on a loaded machine the request
	// above can give up before the policy service has seen it.
	eventually.True(t, "the application port's policy to be asked for", func() bool { return pol.watches(app.Port()) > 0 })
	resp, err := http.Get("http://" + admin.String() + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/ready answered %d before the application port's policy was known", resp.StatusCode)
	}

	close(pol.release)
	waitReady(t, server)
	if resp, body := get(t, c, "http://"+serverIn.String()+"/"); resp.StatusCode != http.StatusOK || body != "app" {
		t.Fatalf("once the policy is known: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, "http://"+serverIn.String()+"/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("again: %d", resp.StatusCode)
	}
}

// TestDetectionStallDoesNotBypassRoutes: a client that pauses during protocol detection
// does not reach a Server with HTTP routes as opaque TCP (which only checks the
// server-level authorizations): a request that began before the pause is still routed,
// and bytes that are not HTTP are refused. A Server without routes of its own still
// serves a server-speaks-first protocol once detection gives up.
func TestDetectionStallDoesNotBypassRoutes(t *testing.T) {
	m := startMeshCP(t)
	web, greeter := namedApp(t, "app"), greeterApp(t)
	pol := newPortPolicies(denyAll())
	pol.byPort[uint32(web.Port())] = &inbound.Server{Labels: map[string]string{"kind": "server", "name": "web-http"},
		Authorizations: []*inbound.Authz{unauthenticated()},
		Protocol: &inbound.ProxyProtocol{Kind: &inbound.ProxyProtocol_Detect_{Detect: &inbound.ProxyProtocol_Detect{
			HttpRoutes: []*inbound.HttpRoute{pathRoute("public", "/public", false)}}}}}
	pol.byPort[uint32(greeter.Port())] = allowAll()
	close(pol.release)
	start := func(app netip.AddrPort) netip.AddrPort {
		env := m.env(serverIdentity)
		for k, v := range startPolicyService(t, m, pol) {
			env[k] = v
		}
		env[config.EnvInboundPorts] = strconv.Itoa(int(app.Port()))
		env[config.EnvInboundDetectTimeout] = "100ms"
		p := startProxy(t, netip.AddrPort{}, app, env, nil)
		waitReady(t, p)
		in, _, _ := p.Addrs()
		return in
	}
	webIn, greeterIn := start(web), start(greeter)

	c := clientTo(webIn, false)
	if resp, body := get(t, c, "http://web/public"); resp.StatusCode != http.StatusOK || body != "app" {
		t.Fatalf("/public: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, "http://web/admin"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/admin: %d, want 404", resp.StatusCode)
	}
	// The attack: the first byte, a pause well past the detection timeout, then the rest.
	dial := func(addr netip.AddrPort) net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() }) // before the proxies stop
		return conn
	}
	conn := dial(webIn)
	io.WriteString(conn, "G")
	time.Sleep(time.Second) // the stall under test, not synchronisation
	io.WriteString(conn, "ET /admin HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
	if got := readAll(conn); !strings.HasPrefix(got, "HTTP/1.1 404") {
		t.Fatalf("a request that stalled during detection got %q, want a 404", got)
	}
	conn.Close()
	// Not HTTP at all: refused, the application never sees it.
	conn = dial(webIn)
	io.WriteString(conn, "\x00\x01\x02 binary\r\n")
	if got := readAll(conn); got != "" {
		t.Fatalf("bytes that are not HTTP got %q", got)
	}
	conn.Close()

	// A server-speaks-first application behind a Server without routes.
	conn = dial(greeterIn)
	expectGreetingAndEcho(t, conn)
	conn.Close()
}

// TestControlPlaneProxiesDoNotWaitForPolicies: the proxy of a control-plane component the
// mesh bootstraps through (here the policy controller's own: its identity is the policy
// service's) serves with the default policy and is ready before the controller answers.
func TestControlPlaneProxiesDoNotWaitForPolicies(t *testing.T) {
	m := startMeshCP(t)
	app := namedApp(t, "app")
	pol := newPortPolicies(denyAll()) // never released: the controller does not answer
	env := m.env(policySvcName)
	for k, v := range startPolicyService(t, m, pol) {
		env[k] = v
	}
	env[config.EnvInboundDefaultPolicy] = "all-unauthenticated"
	env[config.EnvInboundPorts] = strconv.Itoa(int(app.Port()))
	server := startProxy(t, netip.AddrPort{}, app, env, nil)
	waitReady(t, server)
	serverIn, _, _ := server.Addrs()
	if resp, body := get(t, clientTo(serverIn, false), "http://"+serverIn.String()+"/"); resp.StatusCode != http.StatusOK || body != "app" {
		t.Fatalf("a control-plane proxy before the controller answers: %d %q", resp.StatusCode, body)
	}
}
