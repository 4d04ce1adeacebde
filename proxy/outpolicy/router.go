package outpolicy

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/routes"
)

// ResolveFunc resolves a backend Service's authority to its balanced backend, as
// discovery does for any target: ok=false when the control plane says it is not a
// service, an error when it has not answered.
type ResolveFunc func(ctx context.Context, authority string) (be *forward.Backend, ok bool, err error)

// Router routes the requests of one target by its outbound policy; it implements
// forward.PolicyRouter.
type Router struct {
	cur     *Current
	profile *routes.Current
	resolve ResolveFunc
}

// NewRouter returns the policy router of a target whose policy is cur and whose
// ServiceProfile routes are profile (which may be nil): while the profile has routes,
// the ServiceProfile takes precedence and the policy is not applied.
func NewRouter(cur *Current, profile *routes.Current, resolve ResolveFunc) *Router {
	return &Router{cur: cur, profile: profile, resolve: resolve}
}

// Active reports whether requests route by the policy: there is one, it does more than
// forward to the target itself, and the target has no ServiceProfile routes.
func (rt *Router) Active() bool {
	p := rt.cur.Load()
	return p != nil && !p.trivial && rt.profile.Load() == nil
}

// RouteRequest picks the rule of r (404 "no route found for request" when none matches;
// gRPC NOT_FOUND), applies its request filters (header edits, then a URL rewrite) and
// then a backend's, chosen at random
// by weight, and resolves that backend's Service. A backend that does not resolve, and
// a rule whose backends all have weight 0, fail the request with 500.
func (rt *Router) RouteRequest(r *http.Request) (forward.PolicyDecision, error) {
	var none forward.PolicyDecision
	p := rt.cur.Load()
	if p.Trivial() {
		return none, nil // the policy changed since Active: the target applies
	}
	rule, ok := p.Match(r)
	if !ok {
		return none, &forward.RouteError{Status: http.StatusNotFound, GRPCCode: grpcNotFound, Reason: "no route found for request"}
	}
	// From here on the request is the route's: its refusals are recorded on it.
	refused := forward.PolicyDecision{RouteMetrics: rule.metrics.forHost(r.Host)}
	if f := rule.filters.apply(r.Header); f != nil {
		return refused, f.err()
	}
	if rd := rule.filters.redirect; rd != nil {
		return refused, &forward.RouteError{Status: rd.status, Reason: "redirected by route " + rule.Name, Location: rd.location(r)}
	}
	if rw := rule.filters.rewrite; rw != nil {
		rw.apply(r)
	}
	b := rule.pick()
	if b == nil {
		return refused, &forward.RouteError{Status: http.StatusInternalServerError, Reason: "no backend with a weight for the route " + rule.Name}
	}
	if f := b.filters.apply(r.Header); f != nil {
		return refused, f.err()
	}
	if rw := b.filters.rewrite; rw != nil {
		rw.apply(r)
	}
	if b.authority == "" {
		return refused, &forward.RouteError{Status: http.StatusInternalServerError, Reason: "route backend unavailable"}
	}
	be, ok, err := rt.resolve(r.Context(), b.authority)
	if err != nil {
		return refused, fmt.Errorf("discovering route backend %s: %w", b.authority, err)
	}
	if !ok {
		return refused, &forward.RouteError{Status: http.StatusInternalServerError, Reason: "route backend " + b.authority + " is not a service"}
	}
	b.gauge.Set(be.Balancer)
	return forward.PolicyDecision{Backend: be, Route: rule.route, ModifyResponse: combine(rule.filters.respMod, b.filters.respMod),
		RouteMetrics: refused.RouteMetrics, BackendMetrics: b.metrics}, nil
}

// DefaultMetrics returns the series of a request to the target under its policy's
// default route (the policy controller's generated route, forwarding to the target
// itself), and binds the route backend's balancer gauge to be's balancer; nil, nil when
// the policy is not trivial or the target has ServiceProfile routes.
func (rt *Router) DefaultMetrics(be *forward.Backend, host string) (route, backend *metrics.Requests) {
	p := rt.cur.Load()
	if p == nil || !p.trivial || len(p.rules) != 1 || rt.profile.Load() != nil {
		return nil, nil
	}
	rule := p.rules[0]
	b := &rule.backends[0]
	b.gauge.Set(be.Balancer)
	return rule.metrics.forHost(host), b.metrics
}

// combine returns a function applying a then b (either may be nil).
func combine(a, b func(http.Header)) func(http.Header) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(h http.Header) { a(h); b(h) }
}

func (f *failure) err() error {
	return &forward.RouteError{Status: f.status, GRPCCode: f.code, Reason: f.message}
}

var _ forward.PolicyRouter = (*Router)(nil)

// WaitReady waits at most timeout for the controller's first answer about the target;
// see Current.WaitReady.
func (rt *Router) WaitReady(ctx context.Context, timeout time.Duration) error {
	return rt.cur.WaitReady(ctx, timeout)
}
