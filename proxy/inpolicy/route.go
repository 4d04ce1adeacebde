package inpolicy

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
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
	match             routematch.Matcher
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
	if len(p.routes) == 1 && p.routes[0].match.CatchAll() {
		return &p.routes[0], true // the common case: one route for every request
	}
	path, safe := routematch.RequestPath(r)
	if !safe && p.routesOnPath() {
		return nil, false
	}
	var best *Route
	var bestRank routematch.Rank
	var query url.Values
	queried := false
	for i := range p.routes {
		rt := &p.routes[i]
		if !queried && rt.match.NeedsQuery() {
			query, queried = routematch.ParseQuery(r), true
		}
		rk, ok := rt.match.Match(r, path, query)
		if ok && (best == nil || rk.Better(bestRank)) {
			best, bestRank = rt, rk
		}
	}
	return best, best != nil
}

// routesOnPath reports whether the route a request matches on p may depend on its path.
func (p *Port) routesOnPath() bool {
	for i := range p.routes {
		if p.routes[i].match.OnPath() {
			return true
		}
	}
	return false
}

// NeedsHeaders reports whether routing a request on this port looks at header fields
// other than Host, or at the query string.
func (p *Port) NeedsHeaders() bool { return p.needsHeaders }

// GRPC reports whether the port's routes are gRPC routes (the server's protocol is gRPC).
func (p *Port) GRPC() bool { return p.grpc }

// defaultRoute is the route of a server that declares none: every request, admitted by
// the server's authorizations.
func defaultRoute(authz []Authz, grpc bool) Route {
	return Route{Kind: "default", Name: "default", authz: authz, match: routematch.Any(grpc)}
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
func compileHTTPRoute(pr *pb.HttpRoute, server []Authz) (Route, error) {
	rt := Route{}
	rt.Group, rt.Kind, rt.Name = routeMeta(pr.GetMetadata())
	rules := make([][]*httproute.HttpRouteMatch, 0, len(pr.GetRules()))
	for _, rule := range pr.GetRules() {
		rules = append(rules, rule.GetMatches())
	}
	var err error
	if rt.match, err = routematch.HTTP(pr.GetHosts(), rules...); err != nil {
		return rt, fmt.Errorf("route %s: %w", rt.Name, err)
	}
	rt.authz = append(authorizations(pr.GetAuthorizations()), server...)
	return rt, nil
}

// compileGRPCRoute translates an inbound GrpcRoute, like compileHTTPRoute.
func compileGRPCRoute(pr *pb.GrpcRoute, server []Authz) (Route, error) {
	rt := Route{}
	rt.Group, rt.Kind, rt.Name = routeMeta(pr.GetMetadata())
	rules := make([][]*grpcroute.GrpcRouteMatch, 0, len(pr.GetRules()))
	for _, rule := range pr.GetRules() {
		rules = append(rules, rule.GetMatches())
	}
	var err error
	if rt.match, err = routematch.GRPC(pr.GetHosts(), rules...); err != nil {
		return rt, fmt.Errorf("route %s: %w", rt.Name, err)
	}
	rt.authz = append(authorizations(pr.GetAuthorizations()), server...)
	return rt, nil
}
