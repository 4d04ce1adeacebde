package outpolicy

import (
	"testing"

	"github.com/l5d-go/l5d/proto/gen/httproute"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
)

func rewriteFilter(host string, path *httproute.PathModifier) *pb.HttpRoute_Filter {
	return &pb.HttpRoute_Filter{Kind: &pb.HttpRoute_Filter_UrlRewrite{UrlRewrite: &httproute.UrlRewrite{Host: host, Path: path}}}
}

func fullPath(p string) *httproute.PathModifier {
	return &httproute.PathModifier{Replace: &httproute.PathModifier_Full{Full: p}}
}

func prefixPath(p string) *httproute.PathModifier {
	return &httproute.PathModifier{Replace: &httproute.PathModifier_Prefix{Prefix: p}}
}

// TestRewriteRequests: a rule's URL rewrite (and a backend's) replaces the path (whole, or
// the prefix the rule matched, the query kept) and the Host of the request routed, as the
// Gateway API conformance suite's MeshHTTPRouteRewritePath expects.
func TestRewriteRequests(t *testing.T) {
	rule := func(match string, f *pb.HttpRoute_Filter) *pb.HttpRoute_Rule {
		return &pb.HttpRoute_Rule{Matches: []*httproute.HttpRouteMatch{prefix(match)}, Filters: []*pb.HttpRoute_Filter{f}, Backends: first("web.ns.svc.cluster.local:80")}
	}
	backendRule := &pb.HttpRoute_Rule{Matches: []*httproute.HttpRouteMatch{prefix("/backend")}, Backends: &pb.HttpRoute_Distribution{
		Kind: &pb.HttpRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.HttpRoute_Distribution_FirstAvailable{
			Backends: []*pb.HttpRoute_RouteBackend{{Backend: dstBackend("web.ns.svc.cluster.local:80"), Filters: []*pb.HttpRoute_Filter{rewriteFilter("", prefixPath("/b"))}}}}}}}
	p, err := FromProto(detect(&pb.HttpRoute{Metadata: resourceMeta("rw"), Rules: []*pb.HttpRoute_Rule{
		rule("/prefix/one", rewriteFilter("", prefixPath("/one"))),
		rule("/strip-prefix", rewriteFilter("", prefixPath("/"))),
		rule("/full/one", rewriteFilter("", fullPath("/one"))),
		rule("/host", rewriteFilter("other.example", nil)),
		backendRule,
	}}))
	if err != nil {
		t.Fatal(err)
	}
	be := &forward.Backend{Balancer: balance.New[*forward.Endpoint](balance.Options{})}
	rt := boundRouter(t, metrics.New(), p, be)
	for _, tc := range []struct{ target, wantPath, wantQuery, wantHost string }{
		{"/prefix/one/two", "/one/two", "", "web.ns.svc.cluster.local"},
		{"/prefix/one", "/one", "", "web.ns.svc.cluster.local"},
		{"/strip-prefix/three?x=1", "/three", "x=1", "web.ns.svc.cluster.local"},
		{"/strip-prefix", "/", "", "web.ns.svc.cluster.local"},
		{"/full/one/two?y=2", "/one", "y=2", "web.ns.svc.cluster.local"},
		{"/host/a", "/host/a", "", "other.example"},
		{"/backend/c", "/b/c", "", "web.ns.svc.cluster.local"},
	} {
		r := request("GET", tc.target)
		if _, err := rt.RouteRequest(r); err != nil {
			t.Fatalf("%s: %v", tc.target, err)
		}
		if r.URL.Path != tc.wantPath || r.URL.RawQuery != tc.wantQuery || r.Host != tc.wantHost {
			t.Errorf("%s: rewritten to host %q path %q query %q, want %q %q %q", tc.target, r.Host, r.URL.Path, r.URL.RawQuery, tc.wantHost, tc.wantPath, tc.wantQuery)
		}
	}
	for _, bad := range []*httproute.UrlRewrite{{Host: "a b"}, {Path: fullPath("relative")}, {Path: prefixPath("/a?b")}} {
		if _, err := compileRewrite(bad); err == nil {
			t.Errorf("rewrite %v accepted", bad)
		}
	}
}
