package app

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/destination"
	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/gen/tlsroute"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// tcpGreeter greets each connection with its name and a newline, then echoes it.
func tcpGreeter(t *testing.T, name string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.WriteString(c, name+"\n"); io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// routedService starts Services web and web-v2 (greeting "web" and "new"), a policy
// controller answering policy for web, and a client proxy whose connections' original
// destination is a "ClusterIP" of web marked opaque (so the proxy does not wait for the
// client to speak); it returns the policies and the proxy's outbound address.
func routedService(t *testing.T, policy *pb.OutboundPolicy) (*scriptedcp.OutboundPolicies, netip.AddrPort) {
	t.Helper()
	d, cp := startDestination(t)
	d.SetProfile(unreachable.String(), &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local.", OpaqueProtocol: true})
	d.Set("web.ns.svc.cluster.local:1", scriptedcp.Endpoint{Addr: tcpGreeter(t, "web")})
	d.Set("web-v2.ns.svc.cluster.local:1", scriptedcp.Endpoint{Addr: tcpGreeter(t, "new")})
	op := scriptedcp.NewOutboundPolicies()
	opAddr, err := op.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Stop)
	op.Set(unreachable.String(), policy)
	p := startProxy(t, unreachable, netip.AddrPort{}, map[string]string{
		config.EnvDestinationAddr:            cp,
		config.EnvPolicyAddr:                 opAddr,
		config.EnvPolicyWorkload:             `{"ns":"ns","pod":"client-0"}`,
		config.EnvDestinationProfileNetworks: "127.0.0.0/8",
	}, nil)
	_, out, _ := p.Addrs()
	return op, out
}

// tcpRoutePolicy is an opaque policy whose one TCPRoute splits connections between
// Services by weight, as the policy controller renders a TCPRoute.
func tcpRoutePolicy(backends ...weighted) *pb.OutboundPolicy {
	var ws []*pb.OpaqueRoute_WeightedRouteBackend
	for _, b := range backends {
		ws = append(ws, &pb.OpaqueRoute_WeightedRouteBackend{Weight: b.weight, Backend: &pb.OpaqueRoute_RouteBackend{Backend: &pb.Backend{
			Kind: &pb.Backend_Balancer{Balancer: &pb.Backend_BalanceP2C{Discovery: &pb.Backend_EndpointDiscovery{
				Kind: &pb.Backend_EndpointDiscovery_Dst{Dst: &pb.Backend_EndpointDiscovery_DestinationGet{Path: b.authority}}}}}}}})
	}
	return &pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: &pb.ProxyProtocol_Opaque{Routes: []*pb.OpaqueRoute{{
		Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{Group: "gateway.networking.k8s.io", Kind: "TCPRoute", Namespace: "ns", Name: "db-split"}}},
		Rules: []*pb.OpaqueRoute_Rule{{Backends: &pb.OpaqueRoute_Distribution{Kind: &pb.OpaqueRoute_Distribution_RandomAvailable_{
			RandomAvailable: &pb.OpaqueRoute_Distribution_RandomAvailable{Backends: ws}}}}},
	}}}}}}
}

// TestTCPRouteSplitsOpaqueConnections: opaque connections to a Service follow its
// TCPRoute's weights: 100/0 all to the Service, 0/100 all to the other, 50/50 to both.
func TestTCPRouteSplitsOpaqueConnections(t *testing.T) {
	const web, v2 = "web.ns.svc.cluster.local:1", "web-v2.ns.svc.cluster.local:1"
	op, out := routedService(t, tcpRoutePolicy(weighted{web, 100}, weighted{v2, 0}))
	greeting := func() string {
		c, err := net.Dial("tcp", out.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 3)
		n, _ := io.ReadFull(c, buf)
		return string(buf[:n])
	}
	count := func(n int) map[string]int {
		seen := map[string]int{}
		for range n {
			seen[greeting()]++
		}
		return seen
	}
	if got := count(10); got["web"] != 10 {
		t.Fatalf("weights 100/0: %v, want every connection to web", got)
	}
	op.Set(unreachable.String(), tcpRoutePolicy(weighted{web, 0}, weighted{v2, 100}))
	eventually.True(t, "web-v2 to greet", func() bool { return greeting() == "new" })
	if got := count(10); got["new"] != 10 {
		t.Fatalf("weights 0/100: %v, want every connection to web-v2", got)
	}
	op.Set(unreachable.String(), tcpRoutePolicy(weighted{web, 50}, weighted{v2, 50}))
	seen := map[string]int{}
	eventually.True(t, "both Services to greet under 50/50", func() bool {
		for k, v := range count(10) {
			seen[k] += v
		}
		return seen["web"] > 0 && seen["new"] > 0
	})
	for k := range seen {
		if k != "web" && k != "new" {
			t.Fatalf("weights 50/50: unexpected greeting %q (all: %v)", k, seen)
		}
	}
}

// tlsRoutePolicy is a TLS policy with one TLSRoute per server name, each to one Service,
// and a last route without names to fallback.
func tlsRoutePolicy(byName map[string]string, fallback string) *pb.OutboundPolicy {
	route := func(name, authority string) *pb.TlsRoute {
		r := &pb.TlsRoute{
			Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{Group: "gateway.networking.k8s.io", Kind: "TLSRoute", Namespace: "ns", Name: "to-" + authority}}},
			Rules: []*pb.TlsRoute_Rule{{Backends: &pb.TlsRoute_Distribution{Kind: &pb.TlsRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.TlsRoute_Distribution_FirstAvailable{
				Backends: []*pb.TlsRoute_RouteBackend{{Backend: &pb.Backend{Kind: &pb.Backend_Balancer{Balancer: &pb.Backend_BalanceP2C{Discovery: &pb.Backend_EndpointDiscovery{
					Kind: &pb.Backend_EndpointDiscovery_Dst{Dst: &pb.Backend_EndpointDiscovery_DestinationGet{Path: authority}}}}}}}}}}}}},
		}
		if name != "" {
			r.Snis = []*tlsroute.SniMatch{{Match: &tlsroute.SniMatch_Exact{Exact: name}}}
		}
		return r
	}
	var rs []*pb.TlsRoute
	for name, authority := range byName {
		rs = append(rs, route(name, authority))
	}
	rs = append(rs, route("", fallback))
	return &pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Tls_{Tls: &pb.ProxyProtocol_Tls{Routes: rs}}}}
}

// clientHello returns the first TLS record a crypto/tls client sends for server name.
func clientHello(t *testing.T, name string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		tls.Client(a, &tls.Config{ServerName: name}).Handshake()
		a.Close()
	}()
	defer b.Close()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// TestTLSRouteRoutesByServerName: TLS connections to a Service whose policy has
// TLSRoutes go to the Service the route of their ClientHello's server name names, and
// the hello reaches it intact.
func TestTLSRouteRoutesByServerName(t *testing.T) {
	_, out := routedService(t, tlsRoutePolicy(map[string]string{"api.example.com": "web-v2.ns.svc.cluster.local:1"}, "web.ns.svc.cluster.local:1"))
	// connect sends a ClientHello for name and returns the greeting and the echoed hello.
	connect := func(name string) (string, bool) {
		hello := clientHello(t, name)
		c, err := net.Dial("tcp", out.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(hello); err != nil {
			return "", false
		}
		buf := make([]byte, 4+len(hello))
		n, _ := io.ReadFull(c, buf)
		return string(buf[:min(n, 3)]), n == len(buf) && bytes.Equal(buf[4:], hello)
	}
	eventually.True(t, "api.example.com to reach web-v2", func() bool { g, _ := connect("api.example.com"); return g == "new" })
	if g, intact := connect("api.example.com"); g != "new" || !intact {
		t.Fatalf("api.example.com: greeting %q, hello intact %v", g, intact)
	}
	if g, intact := connect("other.example.com"); g != "web" || !intact {
		t.Fatalf("other.example.com: greeting %q, hello intact %v, want web", g, intact)
	}
}
