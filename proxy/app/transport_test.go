package app

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
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

// greeterApp greets each connection with "hello", then echoes it.
func greeterApp(t *testing.T) netip.AddrPort { t.Helper(); return tcpGreeter(t, "hello") }

// expectGreetingAndEcho reads the greeting and checks one echo round trip on c.
func expectGreetingAndEcho(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	greeting := make([]byte, len("hello\n"))
	if _, err := io.ReadFull(c, greeting); err != nil || string(greeting) != "hello\n" {
		t.Fatalf("greeting %q %v", greeting, err)
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("ping\n"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("echo %q %v", buf, err)
	}
}

// TestOpaqueTransportBetweenProxies: an opaque connection to a meshed endpoint whose
// discovery hint carries an opaque transport port goes over mesh TLS to the server
// proxy's inbound port with a transport header, and the server proxy delivers it to the
// original port (it has no other way to learn it: no fallback destination) and sees the
// client's identity.
func TestOpaqueTransportBetweenProxies(t *testing.T) {
	m := startMeshCP(t)
	app := greeterApp(t)
	server := startProxy(t, netip.AddrPort{}, netip.AddrPort{}, m.env(serverIdentity), nil)
	// The client's original destination is the app's address, in the profile networks,
	// whose profile names the service and marks it opaque (no detection: the app speaks
	// first).
	clientEnv := m.env(clientIdentity)
	clientEnv[config.EnvDestinationProfileNetworks] = "127.0.0.0/8"
	clientEnv[config.EnvOutboundDetectTimeout] = "20s"
	client := startProxy(t, app, netip.AddrPort{}, clientEnv, nil)
	waitReady(t, server)
	waitReady(t, client)
	serverIn, _, _ := server.Addrs()
	// The app's own address is the endpoint: connecting to it directly (without the
	// transport) would fail the TLS handshake.
	m.dst.SetProfile(app.String(), &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local.", OpaqueProtocol: true})
	m.dst.Set(fmt.Sprintf("web.ns.svc.cluster.local:%d", app.Port()),
		scriptedcp.Endpoint{Addr: app, Identity: serverIdentity, OpaqueTransport: serverIn.Port()})

	_, out, _ := client.Addrs()
	c, err := net.Dial("tcp", out.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectGreetingAndEcho(t, c)
	c.Close()
	eventually.True(t, "server-side TCP metrics with the client identity", func() bool {
		return strings.Contains(scrape(t, server), `tcp_open_total{direction="inbound",peer="src",target_addr="`+app.String()+`",target_ip="127.0.0.1",tls="true",client_id="`+clientIdentity+`"} 1`)
	})

	// A raw mesh TLS client: a valid header reaches the app, a malformed one is refused
	// and the proxy keeps serving.
	dial := func(header []byte) net.Conn {
		t.Helper()
		cfg, err := m.pki.ServerTLS(clientIdentity)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName, cfg.InsecureSkipVerify, cfg.NextProtos, cfg.MinVersion = serverIdentity, true, []string{transportheader.ALPN}, tls.VersionTLS13
		tc, err := tls.Dial("tcp", serverIn.String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if tc.ConnectionState().NegotiatedProtocol != transportheader.ALPN {
			t.Fatalf("negotiated %q", tc.ConnectionState().NegotiatedProtocol)
		}
		if _, err := tc.Write(header); err != nil {
			t.Fatal(err)
		}
		return tc
	}
	good := dial(transportheader.Header{Port: app.Port()}.Append(nil))
	expectGreetingAndEcho(t, good)
	good.Close()
	for _, bad := range [][]byte{
		[]byte("transport.l5d.io/v1\r\n\r\n\x00\x00\x00\x02\x08\x00"),     // port 0
		[]byte("transport.l5d.io/v1\r\n\r\n\xff\xff\xff\xff"),             // absurd length
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n"), // no header at all
	} {
		bc := dial(bad)
		bc.SetDeadline(time.Now().Add(10 * time.Second))
		if n, err := bc.Read(make([]byte, 16)); err == nil {
			t.Fatalf("a malformed header %q got %d bytes back", bad, n)
		}
		bc.Close()
	}
	again := dial(transportheader.Header{Port: app.Port()}.Append(nil))
	expectGreetingAndEcho(t, again)
	again.Close()

	// The policy of the header's port applies: a server whose policy denies everyone
	// closes the transported connection before the app sees it.
	denyEnv := m.env(serverIdentity)
	denyEnv[config.EnvInboundDefaultPolicy] = "deny"
	strict := startProxy(t, netip.AddrPort{}, netip.AddrPort{}, denyEnv, nil)
	waitReady(t, strict)
	serverIn, _, _ = strict.Addrs()
	refused := dial(transportheader.Header{Port: app.Port()}.Append(nil))
	refused.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := refused.Read(make([]byte, 16)); err == nil {
		t.Fatalf("a denied transported connection got %d bytes back", n)
	}
	refused.Close()
	eventually.True(t, "the refusal to be counted", func() bool {
		return hasLine(scrape(t, strict), "inbound_tcp_authz_deny_total{", `target_port="`, `,srv_kind="default",srv_name="deny"} 1`)
	})
}

// TestOutboundTransportMetricsLabelTheTLSUsed: the client proxy's transport metrics say
// what each connection was, as Linkerd's proxy labels them: the application's connection
// to it (peer="src") is loopback; its connection to a meshed endpoint (peer="dst") is
// tls="true" with the server_id the server proved; to an endpoint discovery gave no
// identity, not_provided_by_service_discovery.
func TestOutboundTransportMetricsLabelTheTLSUsed(t *testing.T) {
	m := startMeshCP(t)
	meshed, plain := greeterApp(t), greeterApp(t)
	server := startProxy(t, netip.AddrPort{}, netip.AddrPort{}, m.env(serverIdentity), nil)
	clientEnv := m.env(clientIdentity)
	clientEnv[config.EnvDestinationProfileNetworks] = "127.0.0.0/8"
	clientEnv[config.EnvOutboundDetectTimeout] = "20s"
	// Two clients: each one's original destination is one of the apps.
	meshedClient := startProxy(t, meshed, netip.AddrPort{}, clientEnv, nil)
	plainClient := startProxy(t, plain, netip.AddrPort{}, clientEnv, nil)
	waitReady(t, server)
	waitReady(t, meshedClient)
	waitReady(t, plainClient)
	serverIn, _, _ := server.Addrs()
	for app, ep := range map[netip.AddrPort]scriptedcp.Endpoint{
		meshed: {Addr: meshed, Identity: serverIdentity, OpaqueTransport: serverIn.Port()},
		plain:  {Addr: plain},
	} {
		name := fmt.Sprintf("app-%d.ns.svc.cluster.local", app.Port())
		m.dst.SetProfile(app.String(), &destination.DestinationProfile{FullyQualifiedName: name + ".", OpaqueProtocol: true})
		m.dst.Set(fmt.Sprintf("%s:%d", name, app.Port()), ep)
	}
	for _, p := range []*Proxy{meshedClient, plainClient} {
		_, out, _ := p.Addrs()
		c, err := net.Dial("tcp", out.String())
		if err != nil {
			t.Fatal(err)
		}
		expectGreetingAndEcho(t, c)
		c.Close()
	}
	for _, tc := range []struct {
		p       *Proxy
		app     netip.AddrPort
		dstTLS  string
		context string
	}{
		{meshedClient, meshed, `tls="true",server_id="` + serverIdentity + `"`, "meshed"},
		{plainClient, plain, `tls="no_identity",no_tls_reason="not_provided_by_service_discovery"`, "without identity"},
	} {
		eventually.True(t, "the "+tc.context+" client's transport metrics", func() bool {
			m := scrape(t, tc.p)
			return hasLine(m, `tcp_open_total{direction="outbound",peer="src",`, `tls="no_identity",no_tls_reason="loopback"} 1`) &&
				hasLine(m, `tcp_open_total{direction="outbound",peer="dst",`, tc.dstTLS+"} 1")
		})
		if m := scrape(t, tc.p); hasLine(m, `tcp_open_total{direction="outbound"`, `not_provided_by_service_discovery`) != (tc.context != "meshed") {
			t.Errorf("%s client: not_provided_by_service_discovery where it was not the case:\n%s", tc.context, grepLines(m, "tcp_open_total"))
		}
	}
}

// TestOutboundHTTPConnectionsLabelTheTLSUsed: the connections the client proxy forwards
// HTTP requests on are counted as Linkerd's proxy counts them (peer="dst"): tls="true"
// with the server's identity to a meshed endpoint, over HTTP/1 and HTTP/2 alike, and
// not_provided_by_service_discovery to an endpoint without identity.
func TestOutboundHTTPConnectionsLabelTheTLSUsed(t *testing.T) {
	m := startMeshCP(t)
	app := namedApp(t, "app")
	client, server := meshPair(t, m, app, nil)
	const plainSvc = "plain.ns.svc.cluster.local:80"
	m.dst.Set(plainSvc, scriptedcp.Endpoint{Addr: app})
	_, out, _ := client.Addrs()
	for _, h2 := range []bool{false, true} {
		for _, target := range []string{svc, plainSvc} {
			if body, err := fetch(clientTo(out, h2), "http://"+target+"/"); err != nil || body != "app" {
				t.Fatalf("%s (h2=%v): %q %v", target, h2, body, err)
			}
		}
	}
	serverIn, _, _ := server.Addrs()
	for target, tls := range map[netip.AddrPort]string{
		serverIn: `tls="true",server_id="` + serverIdentity + `"`,
		app:      `tls="no_identity",no_tls_reason="not_provided_by_service_discovery"`,
	} {
		eventually.True(t, "the connection to "+target.String()+" counted with "+tls, func() bool {
			m := scrape(t, client)
			return hasLine(m, `tcp_open_total{direction="outbound",peer="dst",target_addr="`+target.String()+`",`, tls+"} ") &&
				hasLine(m, `tcp_read_bytes_total{direction="outbound",peer="dst",target_addr="`+target.String()+`",`, tls+"} ")
		})
	}
}
