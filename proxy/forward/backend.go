package forward

import (
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/routes"
)

// Endpoint is the forwarding state of one endpoint address, carried by the balancer.
type Endpoint struct {
	// Addr is the endpoint's address.
	Addr netip.AddrPort
	// H2 means the endpoint accepts HTTP/2 for HTTP/1 requests (it is a proxy).
	H2 bool
	// TapLabels describe the endpoint to tap clients (its dst labels from discovery,
	// tls and server_id); nil when there are none.
	TapLabels map[string]string
	// AuthorityOverride, when set, replaces the authority of every request sent to the
	// endpoint ("name:port"): discovery gives it for a multicluster gateway, which routes
	// each request by the name of the remote Service it carries.
	AuthorityOverride string

	hostPort string
	metrics  *metrics.HTTP
	byAuth   *AuthorityMetrics
	pool     connPool
	// failures counts consecutive failed responses, for failure accrual.
	failures atomic.Int32
}

// NewEndpoint returns endpoint state whose requests are recorded on m.
func NewEndpoint(addr netip.AddrPort, h2 bool, m *metrics.HTTP) *Endpoint {
	return &Endpoint{Addr: addr, H2: h2, hostPort: addr.String(), metrics: m}
}

// NewEndpointByAuthority returns endpoint state whose metrics are labelled with each
// request's authority (the inbound side), through am.
func NewEndpointByAuthority(addr netip.AddrPort, am *AuthorityMetrics) *Endpoint {
	return &Endpoint{Addr: addr, hostPort: addr.String(), byAuth: am}
}

func (e *Endpoint) metricsFor(r *http.Request) *metrics.HTTP {
	return e.metricsForHost(r.Host)
}

func (e *Endpoint) metricsForHost(host string) *metrics.HTTP {
	if e.byAuth != nil {
		return e.byAuth.For(host)
	}
	return e.metrics
}

// Backend is one logical destination: a set of endpoints behind a balancer.
type Backend struct {
	// Name is the logical name (authority) the backend serves, for logs.
	Name string
	// Balancer picks the endpoint of each request.
	Balancer *balance.Balancer[*Endpoint]
	// Routes are the ServiceProfile routes of the target (timeouts, retries, route
	// metrics); nil when it has no profile.
	Routes *routes.Current
	// Policy, when set and Active, routes each request by the target's outbound policy
	// (HTTPRoute/GRPCRoute) to another backend; nil for targets without one.
	Policy PolicyRouter
}

// PolicyRouter routes the requests of one target by its outbound policy.
type PolicyRouter interface {
	// Active reports whether the target's requests route by the policy. It is called
	// per request and must not allocate. A target whose policy only forwards to itself,
	// or that has ServiceProfile routes (which take precedence), is not active.
	Active() bool
	// RouteRequest chooses where r goes and applies the chosen rule's request filters to
	// r. An error is answered with the status of StatusFor (a *RouteError for refusals:
	// no route, an injected failure, a redirect, a backend that does not resolve).
	RouteRequest(r *http.Request) (PolicyDecision, error)
	// DefaultMetrics returns the outbound policy series of a request the target serves
	// itself (Active is false) under its policy's default route: the route's, for the
	// request's host, and be's as the route's backend; nil, nil when the target has no
	// such policy. It is called per request and must not allocate.
	DefaultMetrics(be *Backend, host string) (route, backend *metrics.Requests)
}

// PolicyDecision is where an outbound policy sends one request.
type PolicyDecision struct {
	// Backend serves the request; nil means the policy no longer applies (the target
	// serves it as without a policy).
	Backend *Backend
	// Route, when set, is the route whose timeout and retries apply.
	Route *routes.Route
	// ModifyResponse, when set, edits the response's header fields before they are sent
	// (an HTTPRoute's ResponseHeaderModifier filters).
	ModifyResponse func(http.Header)
	// RouteMetrics and BackendMetrics, when set, record the request in the outbound
	// policy's route families (once, as the application sees it) and route-backend
	// families (each attempt). RouteRequest may return RouteMetrics with an error: the
	// matched route refused the request, and the refusal is recorded on it.
	RouteMetrics, BackendMetrics *metrics.Requests
}

// AuthorityMetrics resolves metric handles per request authority for one label set, with
// a bound on how many authorities get their own series (beyond it, authority is empty).
// Lookups of known authorities take a read lock and do not allocate.
type AuthorityMetrics struct {
	reg    *metrics.Registry
	render func(authority string) string
	limit  int

	mu       sync.RWMutex
	byAuth   map[string]*metrics.HTTP
	overflow *metrics.HTTP
}

// NewAuthorityMetrics returns a resolver rendering each authority's label set with render
// and keeping at most limit authorities apart.
func NewAuthorityMetrics(reg *metrics.Registry, limit int, render func(authority string) string) *AuthorityMetrics {
	return &AuthorityMetrics{reg: reg, render: render, limit: limit, byAuth: map[string]*metrics.HTTP{}}
}

// For returns the handle for authority.
func (a *AuthorityMetrics) For(authority string) *metrics.HTTP {
	a.mu.RLock()
	m := a.byAuth[authority]
	a.mu.RUnlock()
	if m != nil {
		return m
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if m = a.byAuth[authority]; m != nil {
		return m
	}
	if len(a.byAuth) >= a.limit {
		if a.overflow == nil {
			a.overflow = a.reg.HTTP(a.render(""))
		}
		return a.overflow
	}
	m = a.reg.HTTP(a.render(authority))
	a.byAuth[authority] = m
	return m
}
