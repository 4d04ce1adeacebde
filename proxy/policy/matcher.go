package policy

import (
	"net/http"
	"net/url"

	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
)

// Matcher is the compiled hosts and request matches of one route rule, for routers
// outside this package (the outbound policy) that rank rules by the same Gateway API
// precedence as inbound routes. A rule without matches matches every request.
type Matcher struct {
	rt         Route
	needsQuery bool
}

// Rank is how specifically a Matcher matched a request; compare ranks with Better.
type Rank struct{ r rank }

// Better reports whether a is more specific than b (host, then path kind and length,
// method, header count, query count).
func (a Rank) Better(b Rank) bool { return a.r.better(b.r) }

// CompileHTTPMatcher compiles the hosts of an HTTP route and the matches of one of its
// rules; an invalid regular expression or an empty host or header match is an error.
func CompileHTTPMatcher(hosts []*httproute.HostMatch, ms []*httproute.HttpRouteMatch) (*Matcher, error) {
	m := &Matcher{}
	var err error
	if m.rt.hosts, err = compileHosts(hosts); err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		m.rt.matches = []routeMatch{{}}
	}
	for _, pm := range ms {
		cm, err := compileHTTPMatch(pm)
		if err != nil {
			return nil, err
		}
		m.needsQuery = m.needsQuery || len(cm.query) > 0
		m.rt.matches = append(m.rt.matches, cm)
	}
	return m, nil
}

// CompileGRPCMatcher compiles the hosts of a gRPC route and the matches of one of its
// rules, like CompileHTTPMatcher.
func CompileGRPCMatcher(hosts []*httproute.HostMatch, ms []*grpcroute.GrpcRouteMatch) (*Matcher, error) {
	m := &Matcher{}
	var err error
	if m.rt.hosts, err = compileHosts(hosts); err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		m.rt.matches = []routeMatch{{grpc: true}}
	}
	for _, pm := range ms {
		cm, err := compileGRPCMatch(pm)
		if err != nil {
			return nil, err
		}
		m.rt.matches = append(m.rt.matches, cm)
	}
	return m, nil
}

// NeedsQuery reports whether Match needs the request's parsed query.
func (m *Matcher) NeedsQuery() bool { return m.needsQuery }

// Match reports whether r matches one of the rule's matches under one of its hosts, and
// the best rank among those that match, comparing paths as NormalizePath gives them.
// query is r's parsed query; it may be nil when NeedsQuery is false.
func (m *Matcher) Match(r *http.Request, query url.Values) (Rank, bool) {
	host, ok := m.rt.hostRank(r.Host)
	if !ok {
		return Rank{}, false
	}
	path, _ := requestPath(r) // outbound routing is not authorization: best effort
	var best rank
	found := false
	for i := range m.rt.matches {
		cm := &m.rt.matches[i]
		if !cm.matches(r, path, query) {
			continue
		}
		if rk := cm.rank(host); !found || rk.better(best) {
			best, found = rk, true
		}
	}
	return Rank{best}, found
}

// ParseQuery parses r's query string for Match (malformed pairs are dropped).
func ParseQuery(r *http.Request) url.Values { return parseQuery(r) }
