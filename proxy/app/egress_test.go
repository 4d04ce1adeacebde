package app

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
	"github.com/l5d-go/l5d/proto/gen/opaqueroute"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/gen/tlsroute"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// egressPolicy is the answer the policy controller gives for ext, an address outside the
// cluster networks, under an EgressNetwork "internet" with trafficPolicy Deny and an
// HTTPRoute allowing host api.example.com, as policy/outbound renders it.
func egressPolicy(ext netip.AddrPort) *pb.OutboundPolicy {
	md := &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{
		Group: "policy.linkerd.io", Kind: "EgressNetwork", Namespace: "ns", Name: "internet", Port: uint32(ext.Port())}}}
	fwd := &pb.HttpRoute_Distribution{Kind: &pb.HttpRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.HttpRoute_Distribution_FirstAvailable{
		Backends: []*pb.HttpRoute_RouteBackend{{Backend: &pb.Backend{Metadata: md,
			Kind: &pb.Backend_Forward{Forward: &destination.WeightedAddr{Addr: netconv.TCPAddress(ext), Weight: 1}}}}}}}}
	all := []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: "/"}}}}
	routes := []*pb.HttpRoute{
		{Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{
			Group: "gateway.networking.k8s.io", Kind: "HTTPRoute", Namespace: "ns", Name: "allow-api"}}},
			Hosts: []*httproute.HostMatch{{Match: &httproute.HostMatch_Exact{Exact: "api.example.com"}}},
			Rules: []*pb.HttpRoute_Rule{{Matches: all, Backends: fwd}}},
		{Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "http-egress-deny"}},
			Rules: []*pb.HttpRoute_Rule{{Matches: all, Backends: fwd, Filters: []*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_FailureInjector{
				FailureInjector: &httproute.HttpFailureInjector{Status: 403, Message: "traffic not allowed", Ratio: &httproute.Ratio{Numerator: 1, Denominator: 1}}}}}}}},
	}
	return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{
		Timeout: durationpb.New(10 * time.Second),
		Http1:   &pb.ProxyProtocol_Http1{Routes: routes},
		Http2:   &pb.ProxyProtocol_Http2{Routes: routes},
	}}}}
}

// egressControl starts a destination service and scripted outbound policies, and returns
// the policies and a function starting a client proxy over them whose connections'
// original destination is ext.
func egressControl(t *testing.T) (*scriptedcp.OutboundPolicies, func(ext netip.AddrPort) *Proxy) {
	t.Helper()
	_, cp := startDestination(t)
	op := scriptedcp.NewOutboundPolicies()
	opAddr, err := op.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Stop)
	return op, func(ext netip.AddrPort) *Proxy {
		return startProxy(t, ext, netip.AddrPort{}, map[string]string{
			config.EnvDestinationAddr: cp,
			config.EnvPolicyAddr:      opAddr,
			config.EnvPolicyWorkload:  `{"ns":"ns","pod":"client-0"}`,
		}, nil)
	}
}

// TestEgressNetworkDeny: requests from a meshed client to an address outside the
// cluster's networks follow the EgressNetwork's policy the controller answers for it:
// the host an attached HTTPRoute names reaches the address, any other gets 403 "traffic
// not allowed", and the route metrics name the EgressNetwork and the external host.
// Without a policy for the address, requests are forwarded as before.
func TestEgressNetworkDeny(t *testing.T) {
	ext := policyApp(t, "external")
	op, startClient := egressControl(t)
	op.Set(ext.String(), egressPolicy(ext))
	p := startClient(ext)
	_, out, _ := p.Addrs()
	for _, h2 := range []bool{false, true} {
		c := clientTo(out, h2)
		resp, body := get(t, c, "http://api.example.com/v1")
		if resp.StatusCode != http.StatusOK || body != "external" {
			t.Fatalf("h2=%v allowed host: %d %q", h2, resp.StatusCode, body)
		}
		resp, _ = get(t, c, "http://other.example.com/")
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("L5d-Proxy-Error") != "traffic not allowed" {
			t.Fatalf("h2=%v denied host: %d %q", h2, resp.StatusCode, resp.Header.Get("L5d-Proxy-Error"))
		}
	}
	sm := scrape(t, p)
	parent := `parent_group="policy.linkerd.io",parent_kind="EgressNetwork",parent_namespace="ns",parent_name="internet",parent_port="` + strconv.Itoa(int(ext.Port())) + `"`
	if !hasLine(sm, "outbound_http_route_request_statuses_total{", parent, `route_name="allow-api"`, `hostname="api.example.com"`, `http_status="200"`) ||
		!hasLine(sm, "outbound_http_route_request_statuses_total{", parent, `route_kind="default"`, `route_name="http-egress-deny"`, `hostname="other.example.com"`, `http_status="403"`) {
		t.Fatalf("egress route metrics missing:\n%s", grepLines(sm, "outbound_http_route_request_statuses_total"))
	}

	// The EgressNetwork removed: the controller has no policy, requests are forwarded.
	op.Set(ext.String(), nil)
	p2 := startClient(ext)
	_, out2, _ := p2.Addrs()
	if resp, body := get(t, clientTo(out2, false), "http://other.example.com/"); resp.StatusCode != http.StatusOK || body != "external" {
		t.Fatalf("without an egress policy: %d %q", resp.StatusCode, body)
	}
}

// withOpaque adds the controller's default opaque egress route of ext to p: forwarding
// to ext, forbidden when deny.
func withOpaque(p *pb.OutboundPolicy, ext netip.AddrPort, deny bool) *pb.OutboundPolicy {
	name := "tcp-egress-allow"
	var filters []*pb.OpaqueRoute_Filter
	if deny {
		name = "tcp-egress-deny"
		filters = []*pb.OpaqueRoute_Filter{{Kind: &pb.OpaqueRoute_Filter_Forbidden{Forbidden: &opaqueroute.Forbidden{}}}}
	}
	p.GetProtocol().GetDetect().Opaque = &pb.ProxyProtocol_Opaque{Routes: []*pb.OpaqueRoute{{
		Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: name}},
		Rules: []*pb.OpaqueRoute_Rule{{Filters: filters, Backends: &pb.OpaqueRoute_Distribution{Kind: &pb.OpaqueRoute_Distribution_FirstAvailable_{
			FirstAvailable: &pb.OpaqueRoute_Distribution_FirstAvailable{Backends: []*pb.OpaqueRoute_RouteBackend{{Backend: &pb.Backend{
				Kind: &pb.Backend_Forward{Forward: &destination.WeightedAddr{Addr: netconv.TCPAddress(ext), Weight: 1}}}}}}}}}},
	}}}
	return p
}

// TestEgressNetworkDenyOpaque: an opaque connection to an address outside the cluster
// networks is closed before reaching it when its EgressNetwork denies it, and relayed
// when the EgressNetwork allows it.
func TestEgressNetworkDenyOpaque(t *testing.T) {
	ext := greeterApp(t)
	op, startClient := egressControl(t)
	op.Set(ext.String(), withOpaque(egressPolicy(ext), ext, true))
	p := startClient(ext)
	_, out, _ := p.Addrs()
	// exchange sends non-HTTP bytes first (so detection ends at once) and returns what
	// comes back before the connection closes.
	exchange := func() string {
		c, err := net.Dial("tcp", out.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "\x00ping\n"); err != nil {
			return ""
		}
		buf := make([]byte, len("hello\n\x00ping\n"))
		n, _ := io.ReadFull(c, buf)
		return string(buf[:n])
	}
	if got := exchange(); got != "" {
		t.Fatalf("denied: the destination answered %q", got)
	}
	op.Set(ext.String(), withOpaque(egressPolicy(ext), ext, false))
	eventually.True(t, "the connection to be relayed once allowed", func() bool { return exchange() == "hello\n\x00ping\n" })
}

// TestEgressNetworkDenyTLS: under an EgressNetwork with trafficPolicy Deny and a TLSRoute
// for api.example.com, a TLS connection to an address outside the cluster networks
// reaches it only when its ClientHello asks for api.example.com.
func TestEgressNetworkDenyTLS(t *testing.T) {
	ext := tcpGreeter(t, "ext")
	op, startClient := egressControl(t)
	md := &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{
		Group: "policy.linkerd.io", Kind: "EgressNetwork", Namespace: "ns", Name: "internet", Port: uint32(ext.Port())}}}
	route := func(meta *pbmeta.Metadata, sni string, deny bool) *pb.TlsRoute {
		r := &pb.TlsRoute{Metadata: meta, Rules: []*pb.TlsRoute_Rule{{Backends: &pb.TlsRoute_Distribution{Kind: &pb.TlsRoute_Distribution_FirstAvailable_{
			FirstAvailable: &pb.TlsRoute_Distribution_FirstAvailable{Backends: []*pb.TlsRoute_RouteBackend{{Backend: &pb.Backend{Metadata: md,
				Kind: &pb.Backend_Forward{Forward: &destination.WeightedAddr{Addr: netconv.TCPAddress(ext), Weight: 1}}}}}}}}}}}
		if sni != "" {
			r.Snis = []*tlsroute.SniMatch{{Match: &tlsroute.SniMatch_Exact{Exact: sni}}}
		}
		if deny {
			r.Rules[0].Filters = []*pb.TlsRoute_Filter{{Kind: &pb.TlsRoute_Filter_Forbidden{Forbidden: &opaqueroute.Forbidden{}}}}
		}
		return r
	}
	op.Set(ext.String(), &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Tls_{Tls: &pb.ProxyProtocol_Tls{Routes: []*pb.TlsRoute{
		route(&pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{Group: "gateway.networking.k8s.io", Kind: "TLSRoute", Namespace: "ns", Name: "api"}}}, "api.example.com", false),
		route(&pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "tls-egress-deny"}}, "", true),
	}}}}})
	_, out, _ := startClient(ext).Addrs()
	greeting := func(name string) string {
		c, err := net.Dial("tcp", out.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(clientHello(t, name)); err != nil {
			return ""
		}
		buf := make([]byte, 3)
		n, _ := io.ReadFull(c, buf)
		return string(buf[:n])
	}
	if g := greeting("api.example.com"); g != "ext" {
		t.Fatalf("allowed server name: greeting %q", g)
	}
	if g := greeting("other.example.com"); g != "" {
		t.Fatalf("denied server name reached the destination: %q", g)
	}
}
