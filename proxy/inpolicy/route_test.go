package inpolicy

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/meta"
)

func resource(name string) *meta.Metadata {
	return &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{Group: "policy.linkerd.io", Kind: "HTTPRoute", Name: name}}}
}

func prefixMatch(p string) *httproute.PathMatch {
	return &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: p}}
}

func httpRoute(name string, matches ...*httproute.HttpRouteMatch) *pb.HttpRoute {
	return &pb.HttpRoute{Metadata: resource(name), Rules: []*pb.HttpRoute_Rule{{Matches: matches}}}
}

func detect(routes ...*pb.HttpRoute) *pb.ProxyProtocol {
	return &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{HttpRoutes: routes}}}
}

func TestRoutePrecedence(t *testing.T) {
	get := &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Registered_{Registered: httptypes.HttpMethod_GET}}
	srv := &pb.Server{Labels: map[string]string{"name": "web", "kind": "server"}, Protocol: detect(
		httpRoute("root", &httproute.HttpRouteMatch{Path: prefixMatch("/")}),
		httpRoute("api", &httproute.HttpRouteMatch{Path: prefixMatch("/api")}),
		httpRoute("api-v1", &httproute.HttpRouteMatch{Path: prefixMatch("/api/v1/")}),
		httpRoute("exact", &httproute.HttpRouteMatch{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Exact{Exact: "/api/v1/ready"}}}),
		httpRoute("regex", &httproute.HttpRouteMatch{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Regex{Regex: "/books/[0-9]+"}}}),
		httpRoute("api-get", &httproute.HttpRouteMatch{Path: prefixMatch("/api"), Method: get}),
		httpRoute("api-header", &httproute.HttpRouteMatch{Path: prefixMatch("/api"), Method: get,
			Headers: []*httproute.HeaderMatch{{Name: "x-canary", Value: &httproute.HeaderMatch_Exact{Exact: []byte("1")}}}}),
		httpRoute("api-query", &httproute.HttpRouteMatch{Path: prefixMatch("/api"), Method: get,
			Headers:     []*httproute.HeaderMatch{{Name: "x-canary", Value: &httproute.HeaderMatch_Regex{Regex: "[0-9]"}}},
			QueryParams: []*httproute.QueryParamMatch{{Name: "debug", Value: &httproute.QueryParamMatch_Exact{Exact: "true"}}}}),
		httpRoute("root-again", &httproute.HttpRouteMatch{Path: prefixMatch("/")}),
	)}
	p, err := FromProto(srv)
	if err != nil {
		t.Fatal(err)
	}
	if !p.NeedsHeaders() {
		t.Error("header matches present but NeedsHeaders is false")
	}
	for _, c := range []struct{ method, url, header, want string }{
		{"GET", "/", "", "root"}, // first declared wins ties
		{"POST", "/apix", "", "root"},
		{"POST", "/api", "", "api"},
		{"POST", "/api/v1/x", "", "api-v1"},
		{"POST", "/api/v1/ready", "", "exact"},
		{"GET", "/books/12", "", "regex"},
		{"GET", "/books/12x", "", "root"},
		{"GET", "/api/x", "", "api-get"},
		{"GET", "/api/x", "1", "api-header"},
		{"GET", "/api/x?debug=true", "1", "api-query"},
		{"GET", "/api/x?debug=false", "1", "api-header"},
	} {
		r := httptest.NewRequest(c.method, c.url, nil)
		if c.header != "" {
			r.Header.Set("X-Canary", c.header)
		}
		rt, ok := p.Match(r)
		if !ok || rt.Name != c.want {
			t.Errorf("%s %s (x-canary %q): route %v, want %s", c.method, c.url, c.header, rt, c.want)
		}
	}
}

func TestRouteAuthorizationsAndNotFound(t *testing.T) {
	const client = "client.ns.serviceaccount.identity.linkerd.cluster.local"
	meshAuthz := &pb.Authz{Labels: map[string]string{"name": "client-only", "kind": "authorizationpolicy"},
		Networks: []*pb.Network{{Net: v4net("0.0.0.0/0")}},
		Authentication: &pb.Authn{Permit: &pb.Authn_MeshTLS{MeshTLS: &pb.Authn_PermitMeshTLS{Clients: &pb.Authn_PermitMeshTLS_Identities{
			Identities: &pb.Authn_PermitMeshTLS_PermitClientIdentities{Identities: []*pb.Identity{{Name: client}}}}}}}}
	probeAuthz := &pb.Authz{Labels: map[string]string{"name": "probe", "kind": "default"}, Networks: []*pb.Network{{Net: v4net("0.0.0.0/0")}},
		Authentication: &pb.Authn{Permit: &pb.Authn_Unauthenticated{Unauthenticated: &pb.Authn_PermitUnauthenticated{}}}}
	admin := httpRoute("admin", &httproute.HttpRouteMatch{Path: prefixMatch("/admin")})
	admin.Authorizations = []*pb.Authz{meshAuthz}
	probe := httpRoute("probe", &httproute.HttpRouteMatch{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Exact{Exact: "/ready"}}})
	probe.Authorizations = []*pb.Authz{probeAuthz}
	p, err := FromProto(&pb.Server{Labels: map[string]string{"name": "web"}, Protocol: detect(admin, probe)})
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("10.0.0.1")
	if rt, ok := p.Match(httptest.NewRequest("GET", "/elsewhere", nil)); ok {
		t.Fatalf("unmatched path got route %s", rt.Name)
	}
	rt, _ := p.Match(httptest.NewRequest("GET", "/admin/x", nil))
	if a, ok := rt.Allow(addr, client); !ok || a.Name != "client-only" {
		t.Errorf("client refused on its route")
	}
	if _, ok := rt.Allow(addr, ""); ok {
		t.Errorf("unauthenticated client admitted to the admin route")
	}
	rt, _ = p.Match(httptest.NewRequest("GET", "/ready", nil))
	if _, ok := rt.Allow(addr, ""); !ok {
		t.Errorf("probe refused")
	}
}

func TestGRPCRoutes(t *testing.T) {
	srv := &pb.Server{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Grpc_{Grpc: &pb.ProxyProtocol_Grpc{Routes: []*pb.GrpcRoute{
		{Metadata: resource("svc"), Rules: []*pb.GrpcRoute_Rule{{Matches: []*grpcroute.GrpcRouteMatch{{Rpc: &grpcroute.GrpcRpcMatch{Service: "pkg.Svc"}}}}}},
		{Metadata: resource("method"), Rules: []*pb.GrpcRoute_Rule{{Matches: []*grpcroute.GrpcRouteMatch{{Rpc: &grpcroute.GrpcRpcMatch{Service: "pkg.Svc", Method: "Get"}}}}}},
	}}}}}
	p, err := FromProto(srv)
	if err != nil || !p.GRPC() {
		t.Fatal(err, p.GRPC())
	}
	for path, want := range map[string]string{"/pkg.Svc/Get": "method", "/pkg.Svc/List": "svc", "/other.Svc/Get": ""} {
		rt, ok := p.Match(httptest.NewRequest("POST", path, nil))
		if got := ""; ok {
			got = rt.Name
			if got != want {
				t.Errorf("%s: route %q, want %q", path, got, want)
			}
		} else if want != "" {
			t.Errorf("%s: no route, want %q", path, want)
		}
	}
}

func TestInvalidRouteIsAnError(t *testing.T) {
	bad := httpRoute("bad", &httproute.HttpRouteMatch{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Regex{Regex: "(["}}})
	if _, err := FromProto(&pb.Server{Protocol: detect(bad)}); err == nil {
		t.Fatal("an invalid regex was accepted")
	}
}

func TestServerWithoutRoutesHasDefaultRoute(t *testing.T) {
	p, err := FromProto(&pb.Server{Protocol: detect(), Authorizations: []*pb.Authz{{Labels: map[string]string{"name": "all"},
		Networks: []*pb.Network{{Net: v4net("0.0.0.0/0")}}, Authentication: &pb.Authn{Permit: &pb.Authn_Unauthenticated{Unauthenticated: &pb.Authn_PermitUnauthenticated{}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	rt, ok := p.Match(httptest.NewRequest("DELETE", "/any/thing", nil))
	if !ok || rt.Kind != "default" {
		t.Fatalf("no default route: %v", rt)
	}
	if _, ok := rt.Allow(netip.MustParseAddr("192.0.2.1"), ""); !ok {
		t.Fatal("the default route does not carry the server's authorizations")
	}
}

// TestRoutesMatchNormalizedPaths: routes compare the normalized path whatever way the
// request spells it; a path that cannot be normalized safely matches no route on a port
// whose routes depend on the path, and does not matter on one whose routes do not.
func TestRoutesMatchNormalizedPaths(t *testing.T) {
	p, err := FromProto(&pb.Server{Labels: map[string]string{"name": "web"}, Protocol: detect(
		httpRoute("admin", &httproute.HttpRouteMatch{Path: prefixMatch("/admin")}),
		httpRoute("encoded-config", &httproute.HttpRouteMatch{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Exact{Exact: "/%7Euser"}}}),
		httpRoute("open", &httproute.HttpRouteMatch{Path: prefixMatch("/")}),
	)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ url, want string }{
		{"/admin", "admin"},
		{"/%61dmin/x", "admin"},
		{"/ADMIN", "open"}, // paths are case-sensitive
		{"/~user", "encoded-config"},
		{"/%7euser", "encoded-config"},
		{"/public", "open"},
		{"/caf%C3%A9", "open"},
		{"/public/../admin", ""},
		{"/admin%2Fx", ""},
		{"/./admin", ""},
	} {
		rt, ok := p.Match(httptest.NewRequest("GET", c.url, nil))
		switch {
		case c.want == "" && ok:
			t.Errorf("%s: route %s, want none", c.url, rt.Name)
		case c.want != "" && (!ok || rt.Name != c.want):
			t.Errorf("%s: route %v, want %s", c.url, rt, c.want)
		}
	}
	// A port whose routes do not look at the path admits any path.
	p, err = FromProto(&pb.Server{Labels: map[string]string{"name": "web"}, Protocol: detect(
		httpRoute("root", &httproute.HttpRouteMatch{Path: prefixMatch("/")}),
		httpRoute("canary", &httproute.HttpRouteMatch{Headers: []*httproute.HeaderMatch{{Name: "x-canary", Value: &httproute.HeaderMatch_Exact{Exact: []byte("1")}}}}),
	)})
	if err != nil {
		t.Fatal(err)
	}
	if rt, ok := p.Match(httptest.NewRequest("GET", "/a/../b", nil)); !ok || rt.Name != "root" {
		t.Errorf("/a/../b on a port without path routes: %v %v", rt, ok)
	}
}
