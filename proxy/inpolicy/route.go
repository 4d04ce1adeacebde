package inpolicy

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/meta"
	"github.com/l5d-go/l5d/proxy/routematch"
)

// Route is one inbound HTTP or gRPC route of a server: the requests it matches and the
// authorizations that admit clients to it (its own, then the server's).
type Route struct {
	// Group, Kind and Name identify the route for metrics (kind "default" for routes the
	// controller or the proxy generated).
	Group, Kind, Name string
	authz             []Authz
}

// Allow returns the authorization of the route that admits a client at addr with mesh
// identity id ("" without mesh TLS), or ok=false.
func (r *Route) Allow(addr netip.Addr, id string) (*Authz, bool) { return allow(r.authz, addr, id) }

// Match returns the route of a request: the most specific match wins and, between equally
// specific ones, the first declared (routematch.Rank). ok=false means no route matches
// (answered 404).
//
// Paths are compared in the form routematch.NormalizePath gives. A request whose path
// cannot be normalized safely matches nothing on a port whose routes depend on the path
// (any path match other than the prefix "/", any gRPC service or method): the
// application might read it as a path of another route than the one it would match.
func (p *Port) Match(r *http.Request) (*Route, bool) {
	if len(p.routes) == 1 && p.match[0].CatchAll() {
		return &p.routes[0], true // the common case: one route for every request
	}
	path, safe := routematch.RequestPath(r)
	if !safe && p.match.OnPath() {
		return nil, false
	}
	i, ok := p.match.Best(r, path)
	if !ok {
		return nil, false
	}
	return &p.routes[i], true
}

// NeedsHeaders reports whether routing a request on this port looks at header fields
// other than Host, or at the query string.
func (p *Port) NeedsHeaders() bool { return p.needsHeaders }

// GRPC reports whether the port's routes are gRPC routes (the server's protocol is gRPC).
func (p *Port) GRPC() bool { return p.grpc }

// setDefaultRoute gives p the route of a server that declares none: every request (HTTP,
// or gRPC when p.grpc), admitted by authz (the server's authorizations).
func (p *Port) setDefaultRoute(authz []Authz) {
	p.routes = []Route{{Kind: "default", Name: "default", authz: authz}}
	p.match = routematch.Table{routematch.Any(p.grpc)}
}

// routeMeta returns the metric identity of a route.
func routeMeta(md *meta.Metadata) (group, kind, name string) {
	if d := md.GetDefault(); d != "" {
		return "", "default", d
	}
	r := md.GetResource()
	return r.GetGroup(), strings.ToLower(r.GetKind()), r.GetName()
}

// compileHTTPRoute translates an inbound HttpRoute; server are the server's
// authorizations, which apply to every route after the route's own.
func compileHTTPRoute(pr *pb.HttpRoute, server []Authz) (Route, routematch.Matcher, error) {
	rt := Route{}
	rt.Group, rt.Kind, rt.Name = routeMeta(pr.GetMetadata())
	rules := make([][]*httproute.HttpRouteMatch, 0, len(pr.GetRules()))
	for _, rule := range pr.GetRules() {
		rules = append(rules, rule.GetMatches())
	}
	m, err := routematch.HTTP(pr.GetHosts(), rules...)
	if err != nil {
		return rt, m, fmt.Errorf("route %s: %w", rt.Name, err)
	}
	rt.authz = append(authorizations(pr.GetAuthorizations()), server...)
	return rt, m, nil
}

// compileGRPCRoute translates an inbound GrpcRoute, like compileHTTPRoute.
func compileGRPCRoute(pr *pb.GrpcRoute, server []Authz) (Route, routematch.Matcher, error) {
	rt := Route{}
	rt.Group, rt.Kind, rt.Name = routeMeta(pr.GetMetadata())
	rules := make([][]*grpcroute.GrpcRouteMatch, 0, len(pr.GetRules()))
	for _, rule := range pr.GetRules() {
		rules = append(rules, rule.GetMatches())
	}
	m, err := routematch.GRPC(pr.GetHosts(), rules...)
	if err != nil {
		return rt, m, fmt.Errorf("route %s: %w", rt.Name, err)
	}
	rt.authz = append(authorizations(pr.GetAuthorizations()), server...)
	return rt, m, nil
}
