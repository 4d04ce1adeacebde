package inbound

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/l5d-go/l5d/proto/gen/httproute"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/meta"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/inpolicy"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// BenchmarkRouteDefaultPolicy is the per-request cost of the inbound routing decision
// (authorization, metrics, backend lookup) under a default policy.
func BenchmarkRouteDefaultPolicy(b *testing.B) {
	p := inpolicy.Default("all-unauthenticated", nil)
	benchRoute(b, p, "http://web.ns.svc.cluster.local/api/items?page=2")
}

// BenchmarkRouteManyRoutes: the same with a Server declaring ten prefix routes, each with
// its own authorization; the request matches the last.
func BenchmarkRouteManyRoutes(b *testing.B) {
	var routes []*pb.HttpRoute
	for i := range 10 {
		routes = append(routes, &pb.HttpRoute{
			Metadata: &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{Kind: "HTTPRoute", Name: fmt.Sprint("r", i)}}},
			Authorizations: []*pb.Authz{{Labels: map[string]string{"name": "anyone"},
				Networks:       []*pb.Network{{Net: netconv.IPNetwork(netip.MustParsePrefix("0.0.0.0/0"))}},
				Authentication: &pb.Authn{Permit: &pb.Authn_Unauthenticated{Unauthenticated: &pb.Authn_PermitUnauthenticated{}}}}},
			Rules: []*pb.HttpRoute_Rule{{Matches: []*httproute.HttpRouteMatch{{
				Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: fmt.Sprint("/api", i)}}}}}},
		})
	}
	p, err := inpolicy.FromProto(&pb.Server{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{HttpRoutes: routes}}}})
	if err != nil {
		b.Fatal(err)
	}
	benchRoute(b, p, "http://web.ns.svc.cluster.local/api9/items?page=2")
}

// BenchmarkRouteRateLimited is BenchmarkRouteDefaultPolicy on a Server with a total and a
// per-identity rate limit too high to refuse: the cost of taking the tokens.
func BenchmarkRouteRateLimited(b *testing.B) {
	p, err := inpolicy.FromProto(&pb.Server{Labels: map[string]string{"kind": "server", "name": "web"},
		Authorizations: []*pb.Authz{{Labels: map[string]string{"name": "anyone"},
			Networks:       []*pb.Network{{Net: netconv.IPNetwork(netip.MustParsePrefix("0.0.0.0/0"))}},
			Authentication: &pb.Authn{Permit: &pb.Authn_Unauthenticated{Unauthenticated: &pb.Authn_PermitUnauthenticated{}}}}},
		Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{
			HttpLocalRateLimit: &pb.HttpLocalRateLimit{
				Total:    &pb.HttpLocalRateLimit_Limit{RequestsPerSecond: 1 << 31},
				Identity: &pb.HttpLocalRateLimit_Limit{RequestsPerSecond: 1 << 30}}}}}})
	if err != nil {
		b.Fatal(err)
	}
	benchRoute(b, p, "http://web.ns.svc.cluster.local/api/items?page=2")
}

// benchRoute measures routing a GET of url from a mesh client under policy p; every
// request must be admitted.
func benchRoute(b *testing.B, p *inpolicy.Port, url string) {
	rt := NewRouter(Options{Policy: func(uint16) *inpolicy.Port { return p }, Metrics: metrics.New()})
	r := httptest.NewRequest("GET", url, nil)
	ci := &forward.ConnInfo{Direction: "inbound", OrigDst: netip.MustParseAddrPort("10.0.0.5:8080"),
		Client: netip.MustParseAddrPort("10.0.0.9:40000"), TLS: true, ClientID: "client.ns.serviceaccount.identity.linkerd.cluster.local"}
	if _, err := rt.Route(r, ci); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.Route(r, ci); err != nil {
			b.Fatal(err)
		}
	}
}
