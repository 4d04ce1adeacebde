// Package routematch is the request matching of the proxy's HTTP and gRPC routes, the
// one both sides use: inbound routes (inpolicy) and outbound route rules (outpolicy).
// It compiles the Gateway API matches the policy controller sends (hosts, path, method,
// headers, query parameters, gRPC service and method), tells whether a request matches
// them, ranks a match by the Gateway API's precedence rules, and normalizes request
// paths (NormalizePath) so every matcher of the proxy compares the same path.
//
// It knows nothing of what a match selects (authorizations, backends, filters): a
// router compiles one Matcher per route or rule into a Table, in declaration order, and
// Table.Best names the one a request takes.
package routematch

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
)

// Matcher is the compiled hosts and request matches of a route (or of one rule of it).
// A request matches when its host is one of the hosts (any host when there are none)
// and it matches one of the matches; a Table of them chooses the best match. The zero
// Matcher matches nothing; Any matches every request.
type Matcher struct {
	hosts   []hostMatch
	matches []match
}

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

// match is one compiled HttpRouteMatch or GrpcRouteMatch. An empty match matches every
// request.
type match struct {
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

// rank is how specifically a match matched a request; compare ranks with better.
type rank struct {
	host    int
	kind    pathKind
	pathLen int
	method  bool
	headers int
	query   int
}

// better reports whether a is more specific than b, as the Gateway API precedence rules
// say: the more specific host (an exact name, then the longest suffix); then an exact
// path, a regex, the longest prefix; then a method; then more headers; then more query
// parameters.
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

// Any returns a Matcher that matches every request: an HTTP one, or a gRPC one when grpc
// (a default route).
func Any(grpc bool) Matcher { return Matcher{matches: []match{{grpc: grpc}}} }

// HTTP compiles the hosts of an HTTP route and the matches of the given rules; a rule
// without matches matches every request. An invalid regular expression, an empty host
// match or a header match without a name is an error naming it.
func HTTP(hosts []*httproute.HostMatch, rules ...[]*httproute.HttpRouteMatch) (Matcher, error) {
	return compile(hosts, rules, match{}, compileHTTPMatch)
}

// GRPC compiles the hosts of a gRPC route and the matches of the given rules, like HTTP.
func GRPC(hosts []*httproute.HostMatch, rules ...[]*grpcroute.GrpcRouteMatch) (Matcher, error) {
	return compile(hosts, rules, match{grpc: true}, compileGRPCMatch)
}

// compile is HTTP and GRPC: every match of rules compiled by one, a rule without matches
// standing for every request (all).
func compile[M any](hosts []*httproute.HostMatch, rules [][]M, all match, one func(M) (match, error)) (Matcher, error) {
	var m Matcher
	var err error
	if m.hosts, err = compileHosts(hosts); err != nil {
		return Matcher{}, err
	}
	for _, ms := range rules {
		if len(ms) == 0 {
			m.matches = append(m.matches, all)
		}
		for _, pm := range ms {
			cm, err := one(pm)
			if err != nil {
				return Matcher{}, err
			}
			m.matches = append(m.matches, cm)
		}
	}
	return m, nil
}

// Table is the matchers of a router's routes (or rules), in the order they were
// declared.
type Table []Matcher

// Best returns the index of the matcher that matches r most specifically, as the Gateway
// API precedence rules say (host, then path kind and length, method, headers, query
// parameters), the first declared between equally specific ones; ok=false when none
// matches. path is r's path as RequestPath gives it; r's query is parsed only when a
// match that r reaches looks at it.
func (t Table) Best(r *http.Request, path string) (i int, ok bool) {
	best := -1
	var bestRank rank
	var query url.Values
	queried := false
	for i := range t {
		m := &t[i]
		host, ok := m.hostRank(r.Host)
		if !ok {
			continue
		}
		for j := range m.matches {
			cm := &m.matches[j]
			if len(cm.query) > 0 && !queried {
				query, queried = parseQuery(r), true
			}
			if !cm.matches(r, path, query) {
				continue
			}
			if rk := cm.rank(host); best < 0 || rk.better(bestRank) {
				best, bestRank = i, rk
			}
		}
	}
	return best, best >= 0
}

// OnPath reports whether the result of Best may depend on the request's path (see
// Matcher.OnPath).
func (t Table) OnPath() bool {
	for i := range t {
		if t[i].OnPath() {
			return true
		}
	}
	return false
}

// NeedsHeaders reports whether Best looks at header fields other than Host, or at the
// query string.
func (t Table) NeedsHeaders() bool {
	for i := range t {
		if t[i].NeedsHeaders() {
			return true
		}
	}
	return false
}

// NeedsHeaders reports whether m looks at header fields other than Host, or at the
// query string.
func (m *Matcher) NeedsHeaders() bool {
	for i := range m.matches {
		if len(m.matches[i].headers) > 0 || len(m.matches[i].query) > 0 {
			return true
		}
	}
	return false
}

// CatchAll reports whether m matches every request: it has no hosts and one of its
// matches matches everything.
func (m *Matcher) CatchAll() bool {
	if len(m.hosts) > 0 {
		return false
	}
	for i := range m.matches {
		cm := &m.matches[i]
		if !cm.grpc && cm.method == "" && len(cm.headers) == 0 && len(cm.query) == 0 &&
			(cm.kind == pathAny || (cm.kind == pathPrefix && cm.path == "/")) {
			return true
		}
		if cm.grpc && cm.grpcService == "" && cm.grpcName == "" && len(cm.headers) == 0 {
			return true
		}
	}
	return false
}

// OnPath reports whether m's verdict on a request may depend on the request's path (any
// path match other than the prefix "/", any gRPC service or method).
func (m *Matcher) OnPath() bool {
	for i := range m.matches {
		if m.matches[i].onPath() {
			return true
		}
	}
	return false
}

// RequestPath returns the normalized path of r (see NormalizePath) and whether it could
// be normalized safely.
func RequestPath(r *http.Request) (string, bool) {
	if r.URL == nil {
		return "", true
	}
	return NormalizePath(r.URL.EscapedPath())
}

// parseQuery parses r's query string (malformed pairs are dropped).
func parseQuery(r *http.Request) url.Values {
	if r.URL == nil {
		return nil
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	return q
}

// onPath reports whether cm tells paths apart (the prefix "/" matches them all).
func (cm *match) onPath() bool {
	if cm.grpc {
		return cm.grpcService != "" || cm.grpcName != ""
	}
	return cm.kind != pathAny && !(cm.kind == pathPrefix && strings.TrimSuffix(cm.path, "/") == "")
}

// hostRank reports whether host (an authority, port allowed) is one of the hosts, and
// how specific the matching host is (exact names beat suffixes, longer suffixes beat
// shorter ones).
func (m *Matcher) hostRank(authority string) (int, bool) {
	if len(m.hosts) == 0 {
		return 0, true
	}
	host := authority
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	best, found := 0, false
	for _, h := range m.hosts {
		switch {
		case h.exact != "" && h.exact == host:
			return 1 << 20, true
		case h.suffix != "" && strings.HasSuffix(host, h.suffix) && len(h.suffix) > best:
			best, found = len(h.suffix), true
		}
	}
	return best, found
}

func (cm *match) rank(host int) rank {
	rk := rank{host: host, kind: cm.kind, pathLen: len(cm.path), method: cm.method != "", headers: len(cm.headers), query: len(cm.query)}
	if cm.grpc {
		// Service and method together beat a service alone, which beats a method alone.
		rk.kind = pathAny
		if cm.grpcService != "" {
			rk.kind += 2
		}
		if cm.grpcName != "" {
			rk.kind++
		}
		rk.pathLen = 0
	}
	return rk
}

// matches reports whether r, whose normalized path is path, matches cm.
func (cm *match) matches(r *http.Request, path string, query url.Values) bool {
	if cm.grpc {
		svc, method, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if !ok || (cm.grpcService != "" && svc != cm.grpcService) || (cm.grpcName != "" && method != cm.grpcName) {
			return false
		}
	} else {
		switch cm.kind {
		case pathExact:
			if path != cm.path {
				return false
			}
		case pathPrefix:
			if !prefixMatches(path, cm.path) {
				return false
			}
		case pathRegex:
			if !cm.re.MatchString(path) {
				return false
			}
		}
		if cm.method != "" && r.Method != cm.method {
			return false
		}
	}
	for _, h := range cm.headers {
		if !anyValue(r.Header[h.name], h) {
			return false
		}
	}
	for _, q := range cm.query {
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

func compileHTTPMatch(m *httproute.HttpRouteMatch) (match, error) {
	var out match
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

func compileGRPCMatch(m *grpcroute.GrpcRouteMatch) (match, error) {
	out := match{grpc: true, grpcService: m.GetRpc().GetService(), grpcName: m.GetRpc().GetMethod()}
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
