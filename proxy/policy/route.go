package policy

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/meta"
)

// Route is one inbound HTTP or gRPC route of a server: the requests it matches and the
// authorizations that admit clients to it (its own, then the server's).
type Route struct {
	// Group, Kind and Name identify the route for metrics (kind "default" for routes the
	// controller or the proxy generated).
	Group, Kind, Name string
	hosts             []hostMatch
	matches           []routeMatch
	authz             []Authz
}

// Allow returns the authorization of the route that admits a client at addr with mesh
// identity id ("" without mesh TLS), or ok=false.
func (r *Route) Allow(addr netip.Addr, id string) (*Authz, bool) { return allow(r.authz, addr, id) }

type hostMatch struct {
	exact  string // lower-case name, or ""
	suffix string // ".example.com" for a suffix match
}

type pathKind uint8

const (
	pathAny pathKind = iota
	pathPrefix
	pathRegex
	pathExact
)

// routeMatch is one compiled HttpRouteMatch or GrpcRouteMatch. An empty match matches
// every request.
type routeMatch struct {
	kind    pathKind
	path    string
	re      *regexp.Regexp
	method  string
	headers []valueMatch
	query   []valueMatch
	// gRPC: the service and method of the request path /service/method ("" = any).
	grpc                  bool
	grpcService, grpcName string
}

type valueMatch struct {
	name  string // canonical header key, or query parameter name
	exact string
	re    *regexp.Regexp
}

// rank orders matches by specificity, as the Gateway API precedence rules say: an exact
// path, then a regex, then the longest prefix; then a method; then more headers; then
// more query parameters. Host specificity comes before all of them.
type rank struct {
	host    int
	kind    pathKind
	pathLen int
	method  bool
	headers int
	query   int
}

func (a rank) better(b rank) bool {
	switch {
	case a.host != b.host:
		return a.host > b.host
	case a.kind != b.kind:
		return a.kind > b.kind
	case a.pathLen != b.pathLen:
		return a.pathLen > b.pathLen
	case a.method != b.method:
		return a.method
	case a.headers != b.headers:
		return a.headers > b.headers
	}
	return a.query > b.query
}

// Match returns the route of a request: the most specific match wins and, between equally
// specific ones, the first declared. ok=false means no route matches (answered 404).
//
// Paths are compared in the form NormalizePath gives. A request whose path cannot be
// normalized safely matches nothing on a port whose routes depend on the path (any path
// match other than the prefix "/", any gRPC service or method): the application might
// read it as a path of another route than the one it would match.
func (p *Port) Match(r *http.Request) (*Route, bool) {
	if len(p.routes) == 1 && p.routes[0].catchAll() {
		return &p.routes[0], true // the common case: one route for every request
	}
	path, safe := requestPath(r)
	if !safe && p.routesOnPath() {
		return nil, false
	}
	var best *Route
	var bestRank rank
	var query url.Values
	queried := false
	for i := range p.routes {
		rt := &p.routes[i]
		host, ok := rt.hostRank(r.Host)
		if !ok {
			continue
		}
		for j := range rt.matches {
			m := &rt.matches[j]
			if len(m.query) > 0 && !queried {
				query, queried = parseQuery(r), true
			}
			if !m.matches(r, path, query) {
				continue
			}
			rk := m.rank(host)
			if best == nil || rk.better(bestRank) {
				best, bestRank = rt, rk
			}
		}
	}
	return best, best != nil
}

// requestPath returns the normalized path of r (see NormalizePath) and whether it could
// be normalized safely.
func requestPath(r *http.Request) (string, bool) {
	if r.URL == nil {
		return "", true
	}
	return NormalizePath(r.URL.EscapedPath())
}

// routesOnPath reports whether the route a request matches on p may depend on its path.
func (p *Port) routesOnPath() bool {
	for i := range p.routes {
		for j := range p.routes[i].matches {
			if p.routes[i].matches[j].onPath() {
				return true
			}
		}
	}
	return false
}

// onPath reports whether m tells paths apart (the prefix "/" matches them all).
func (m *routeMatch) onPath() bool {
	if m.grpc {
		return m.grpcService != "" || m.grpcName != ""
	}
	return m.kind != pathAny && !(m.kind == pathPrefix && strings.TrimSuffix(m.path, "/") == "")
}

func parseQuery(r *http.Request) url.Values {
	if r.URL == nil {
		return nil
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	return q
}

// catchAll is true for a route without hosts whose matches include one matching
// everything.
func (rt *Route) catchAll() bool {
	if len(rt.hosts) > 0 {
		return false
	}
	for i := range rt.matches {
		m := &rt.matches[i]
		if !m.grpc && m.method == "" && len(m.headers) == 0 && len(m.query) == 0 &&
			(m.kind == pathAny || (m.kind == pathPrefix && m.path == "/")) {
			return true
		}
		if m.grpc && m.grpcService == "" && m.grpcName == "" && len(m.headers) == 0 {
			return true
		}
	}
	return false
}

// hostRank reports whether host (an authority, port allowed) is one of the route's
// hosts, and how specific the matching host is (exact names beat suffixes, longer
// suffixes beat shorter ones).
func (rt *Route) hostRank(authority string) (int, bool) {
	if len(rt.hosts) == 0 {
		return 0, true
	}
	host := authority
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	best, found := 0, false
	for _, h := range rt.hosts {
		switch {
		case h.exact != "" && h.exact == host:
			return 1 << 20, true
		case h.suffix != "" && strings.HasSuffix(host, h.suffix) && len(h.suffix) > best:
			best, found = len(h.suffix), true
		}
	}
	return best, found
}

func (m *routeMatch) rank(host int) rank {
	rk := rank{host: host, kind: m.kind, pathLen: len(m.path), method: m.method != "", headers: len(m.headers), query: len(m.query)}
	if m.grpc {
		// Service and method together beat a service alone, which beats a method alone.
		rk.kind = pathAny
		if m.grpcService != "" {
			rk.kind += 2
		}
		if m.grpcName != "" {
			rk.kind++
		}
		rk.pathLen = 0
	}
	return rk
}

// matches reports whether r, whose normalized path is path, matches m.
func (m *routeMatch) matches(r *http.Request, path string, query url.Values) bool {
	if m.grpc {
		svc, method, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if !ok || (m.grpcService != "" && svc != m.grpcService) || (m.grpcName != "" && method != m.grpcName) {
			return false
		}
	} else {
		switch m.kind {
		case pathExact:
			if path != m.path {
				return false
			}
		case pathPrefix:
			if !prefixMatches(path, m.path) {
				return false
			}
		case pathRegex:
			if !m.re.MatchString(path) {
				return false
			}
		}
		if m.method != "" && r.Method != m.method {
			return false
		}
	}
	for _, h := range m.headers {
		if !anyValue(r.Header[h.name], h) {
			return false
		}
	}
	for _, q := range m.query {
		if !anyValue(query[q.name], q) {
			return false
		}
	}
	return true
}

// prefixMatches is the Gateway API PathPrefix rule: the prefix matches whole path
// segments ("/foo" matches "/foo" and "/foo/bar", not "/foobar").
func prefixMatches(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

func anyValue(vv []string, m valueMatch) bool {
	for _, v := range vv {
		if m.re != nil {
			if m.re.MatchString(v) {
				return true
			}
		} else if v == m.exact {
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
	return Route{Kind: "default", Name: "default", authz: authz, matches: []routeMatch{{grpc: grpc}}}
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
	var err error
	if rt.hosts, err = compileHosts(pr.GetHosts()); err != nil {
		return rt, err
	}
	rt.authz = append(authorizations(pr.GetAuthorizations()), server...)
	for _, rule := range pr.GetRules() {
		if len(rule.GetMatches()) == 0 {
			rt.matches = append(rt.matches, routeMatch{})
		}
		for _, m := range rule.GetMatches() {
			cm, err := compileHTTPMatch(m)
			if err != nil {
				return rt, fmt.Errorf("route %s: %w", rt.Name, err)
			}
			rt.matches = append(rt.matches, cm)
		}
	}
	return rt, nil
}

// compileGRPCRoute translates an inbound GrpcRoute, like compileHTTPRoute.
func compileGRPCRoute(pr *pb.GrpcRoute, server []Authz) (Route, error) {
	rt := Route{}
	rt.Group, rt.Kind, rt.Name = routeMeta(pr.GetMetadata())
	var err error
	if rt.hosts, err = compileHosts(pr.GetHosts()); err != nil {
		return rt, err
	}
	rt.authz = append(authorizations(pr.GetAuthorizations()), server...)
	for _, rule := range pr.GetRules() {
		if len(rule.GetMatches()) == 0 {
			rt.matches = append(rt.matches, routeMatch{grpc: true})
		}
		for _, m := range rule.GetMatches() {
			cm, err := compileGRPCMatch(m)
			if err != nil {
				return rt, fmt.Errorf("route %s: %w", rt.Name, err)
			}
			rt.matches = append(rt.matches, cm)
		}
	}
	return rt, nil
}

func compileHosts(hs []*httproute.HostMatch) ([]hostMatch, error) {
	var out []hostMatch
	for _, h := range hs {
		switch {
		case h.GetExact() != "":
			out = append(out, hostMatch{exact: strings.ToLower(strings.TrimSuffix(h.GetExact(), "."))})
		case h.GetSuffix() != nil:
			labels := h.GetSuffix().GetReverseLabels()
			if len(labels) == 0 {
				return nil, fmt.Errorf("host suffix match without labels")
			}
			var sb strings.Builder
			for i := len(labels) - 1; i >= 0; i-- {
				sb.WriteByte('.')
				sb.WriteString(strings.ToLower(labels[i]))
			}
			out = append(out, hostMatch{suffix: sb.String()})
		default:
			return nil, fmt.Errorf("empty host match")
		}
	}
	return out, nil
}

func compileHTTPMatch(m *httproute.HttpRouteMatch) (routeMatch, error) {
	var out routeMatch
	switch {
	case m.GetPath() == nil || m.GetPath().GetKind() == nil:
	case m.GetPath().GetExact() != "" || isExact(m.GetPath()):
		out.kind, out.path = pathExact, configuredPath(m.GetPath().GetExact())
	case isPrefix(m.GetPath()):
		out.kind, out.path = pathPrefix, configuredPath(m.GetPath().GetPrefix())
	default:
		re, err := regexp.Compile("^(?:" + m.GetPath().GetRegex() + ")$")
		if err != nil {
			return out, fmt.Errorf("path regex %q: %w", m.GetPath().GetRegex(), err)
		}
		out.kind, out.path, out.re = pathRegex, m.GetPath().GetRegex(), re
	}
	if mm := m.GetMethod(); mm != nil {
		out.method = methodName(mm)
	}
	var err error
	if out.headers, err = compileHeaders(m.GetHeaders()); err != nil {
		return out, err
	}
	for _, q := range m.GetQueryParams() {
		vm := valueMatch{name: q.GetName()}
		if _, ok := q.GetValue().(*httproute.QueryParamMatch_Regex); ok {
			if vm.re, err = regexp.Compile("^(?:" + q.GetRegex() + ")$"); err != nil {
				return out, fmt.Errorf("query parameter %s regex: %w", q.GetName(), err)
			}
		} else {
			vm.exact = q.GetExact()
		}
		out.query = append(out.query, vm)
	}
	return out, nil
}

// configuredPath is the normalized form of a route's exact or prefix path, so that it
// compares with normalized request paths ("/%61dmin" in a route is "/admin"). A path
// that cannot be normalized is kept as written.
func configuredPath(p string) string {
	if n, ok := NormalizePath(p); ok {
		return n
	}
	return p
}

func isExact(p *httproute.PathMatch) bool {
	_, ok := p.GetKind().(*httproute.PathMatch_Exact)
	return ok
}

func isPrefix(p *httproute.PathMatch) bool {
	_, ok := p.GetKind().(*httproute.PathMatch_Prefix)
	return ok
}

func compileGRPCMatch(m *grpcroute.GrpcRouteMatch) (routeMatch, error) {
	out := routeMatch{grpc: true, grpcService: m.GetRpc().GetService(), grpcName: m.GetRpc().GetMethod()}
	var err error
	out.headers, err = compileHeaders(m.GetHeaders())
	return out, err
}

func compileHeaders(hs []*httproute.HeaderMatch) ([]valueMatch, error) {
	var out []valueMatch
	for _, h := range hs {
		if h.GetName() == "" {
			return nil, fmt.Errorf("header match without a name")
		}
		vm := valueMatch{name: http.CanonicalHeaderKey(h.GetName())}
		if _, ok := h.GetValue().(*httproute.HeaderMatch_Regex); ok {
			re, err := regexp.Compile("^(?:" + h.GetRegex() + ")$")
			if err != nil {
				return nil, fmt.Errorf("header %s regex: %w", h.GetName(), err)
			}
			vm.re = re
		} else {
			vm.exact = string(h.GetExact())
		}
		out = append(out, vm)
	}
	return out, nil
}

func methodName(m *httptypes.HttpMethod) string {
	if _, ok := m.GetType().(*httptypes.HttpMethod_Unregistered); ok {
		return m.GetUnregistered()
	}
	return httptypes.HttpMethod_Registered_name[int32(m.GetRegistered())]
}
