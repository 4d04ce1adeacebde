// Package routes turns a ServiceProfile's routes, as the Destination service sends them in
// a DestinationProfile, into what the outbound proxy applies per request: the first route
// whose condition matches a request's method and path (or the default route), its
// timeout, whether it may be retried, how its responses are classified, its metrics and
// the profile's retry budget.
//
// Conditions come from the control plane, which validates them, but the proxy does not
// trust them: a route whose condition cannot be compiled (an invalid path regex, an empty
// match) is left out and reported; the other routes still apply.
package routes

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"sync/atomic"
	"time"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// maxDepth bounds the nesting of conditions, so a hostile profile cannot exhaust the stack.
const maxDepth = 32

// Table is the compiled routes of one profile. The zero of *Table (nil) has no routes.
type Table struct {
	routes []*Route
	def    *Route
}

// Route is one profile route (or the default route) as applied to requests.
type Route struct {
	// Name is the route's name (its "route" metrics label), "" for the default route.
	Name string
	// Timeout bounds each attempt until the response headers arrive; 0 means none.
	Timeout time.Duration
	// Retryable means failed requests may be sent again, within Budget.
	Retryable bool
	// Budget is the profile's retry budget, shared by its routes; nil (outbound policy
	// routes, bounded by MaxRetries) never refuses a retry.
	Budget *Budget
	// Metrics counts the route's requests as the application sees them, Actual every
	// attempt sent to an endpoint.
	Metrics, Actual *metrics.HTTP
	// Retries counts retries sent; Skipped failed requests not retried for lack of budget.
	Retries, Skipped *atomic.Uint64
	// RetryRequests, when set, counts retries sent in Linkerd's
	// outbound_{http,grpc}_route_retry_requests_total (outbound policy routes).
	RetryRequests *metrics.Requests
	// MaxRetries, when positive, bounds the retries of one request (outbound policy
	// routes); 0 leaves them to the budget alone.
	MaxRetries int
	// RetryOn, when set, says which responses are retried (an outbound policy route's
	// retry conditions); otherwise the failures of IsFailure are.
	RetryOn func(status int, grpcStatus string) bool
	// Accrual, when set, takes an endpoint out of balancing after consecutive failures
	// (an outbound policy's failure accrual).
	Accrual *Accrual

	match   matcher
	classes []class
}

// NeedsPolicy reports whether requests on the route need more than metrics: a timeout or
// retries. Requests on other routes take the proxy's plain forwarding path.
func (r *Route) NeedsPolicy() bool { return r.Timeout > 0 || r.Retryable }

// Match returns the first route whose condition matches method and path (the request
// target without its query), or the default route. It returns nil for a nil table.
func (t *Table) Match(method, path string) *Route {
	if t == nil {
		return nil
	}
	for _, r := range t.routes {
		if r.match.matches(method, path) {
			return r
		}
	}
	return t.def
}

// Len returns the number of routes besides the default one.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.routes)
}

// IsFailure classifies a response by its status and gRPC status ("" when it has none):
// the first response class whose condition matches decides; otherwise a 5xx status or a
// non-zero gRPC status is a failure.
func (r *Route) IsFailure(status int, grpcStatus string) bool {
	for _, c := range r.classes {
		if c.cond.matches(status) {
			return c.failure
		}
	}
	return status >= 500 || (grpcStatus != "" && grpcStatus != "0")
}

// Accrual is consecutive-failure accrual: an endpoint whose last MaxFailures responses
// failed is avoided for a penalty that grows exponentially from MinPenalty to MaxPenalty
// with each further failure, with random jitter of up to JitterRatio of the penalty.
type Accrual struct {
	MaxFailures            int
	MinPenalty, MaxPenalty time.Duration
	JitterRatio            float64
}

// Penalty is how long an endpoint is avoided after its n-th consecutive failure beyond
// MaxFailures (n >= 0).
func (a *Accrual) Penalty(n int) time.Duration {
	d := a.MinPenalty << min(n, 30)
	if d > a.MaxPenalty || d <= 0 {
		d = a.MaxPenalty
	}
	if a.JitterRatio > 0 {
		d += time.Duration(rand.Float64() * a.JitterRatio * float64(d))
	}
	return d
}

// ShouldRetry reports whether a response with status and gRPC status ("" when it has
// none) is retried on a retryable route: RetryOn when set, else IsFailure.
func (r *Route) ShouldRetry(status int, grpcStatus string) bool {
	if r.RetryOn != nil {
		return r.RetryOn(status, grpcStatus)
	}
	return r.IsFailure(status, grpcStatus)
}

// Current holds the latest Table of a profile; it is updated as the profile changes and
// read per request without locks.
type Current struct{ p atomic.Pointer[Table] }

// Load returns the latest table, nil when the profile has no routes.
func (c *Current) Load() *Table {
	if c == nil {
		return nil
	}
	return c.p.Load()
}

// Store replaces the table.
func (c *Current) Store(t *Table) { c.p.Store(t) }

// Options says how to compile a profile's routes.
type Options struct {
	// Metrics registers the routes' metrics; required.
	Metrics *metrics.Registry
	// Labels are the label pairs common to the routes' metrics (direction, dst).
	Labels string
	// Previous is the table the new one replaces, whose budget carries over when the
	// profile's budget is unchanged.
	Previous *Table
}

// Compile compiles the routes and retry budget of dp. It returns nil when dp has no
// routes. Routes that cannot be compiled are left out and reported in the joined error.
func Compile(dp *destination.DestinationProfile, opts Options) (*Table, error) {
	if len(dp.GetRoutes()) == 0 {
		return nil, nil
	}
	budget := budgetOf(dp.GetRetryBudget())
	if prev := opts.Previous; prev != nil && prev.def.Budget.same(budget) {
		budget = prev.def.Budget
	}
	t := &Table{}
	var errs []error
	for i, pr := range dp.GetRoutes() {
		m, err := compileMatch(pr.GetCondition(), 0)
		name := pr.GetMetricsLabels()["route"]
		if err != nil {
			errs = append(errs, fmt.Errorf("route %d %q: %w", i, name, err))
			continue
		}
		r := &Route{Name: name, Retryable: pr.GetIsRetryable(), Budget: budget, match: m}
		if d := pr.GetTimeout(); d != nil {
			if err := d.CheckValid(); err != nil {
				errs = append(errs, fmt.Errorf("route %d %q: timeout: %w", i, name, err))
				continue
			}
			r.Timeout = max(d.AsDuration(), 0)
		}
		for j, rc := range pr.GetResponseClasses() {
			c, err := compileClass(rc.GetCondition(), 0)
			if err != nil {
				errs = append(errs, fmt.Errorf("route %d %q: response class %d: %w", i, name, j, err))
				continue
			}
			r.classes = append(r.classes, class{cond: c, failure: rc.GetIsFailure()})
		}
		r.register(opts, routeLabels(pr.GetMetricsLabels()))
		t.routes = append(t.routes, r)
	}
	t.def = &Route{Budget: budget}
	t.def.register(opts, "")
	return t, errors.Join(errs...)
}

func (r *Route) register(opts Options, routeLabels string) {
	labels := metrics.Join(opts.Labels, routeLabels)
	r.Metrics = opts.Metrics.Route(labels)
	r.Actual = opts.Metrics.RouteActual(labels)
	r.Retries = opts.Metrics.Counter("route_retry_total", "Total count of retries of requests on ServiceProfile routes.", labels)
	r.Skipped = opts.Metrics.Counter("route_retry_skipped_total",
		"Total count of failed requests on retryable ServiceProfile routes not retried because the retry budget was exhausted.",
		metrics.Join(labels, `reason="budget"`))
}

// routeLabels renders a route's metrics labels with the rt_ prefix, sorted by name.
func routeLabels(m map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if validLabelName(k) {
			kv = append(kv, "rt_"+k, m[k])
		}
	}
	return metrics.Labels(kv...)
}

func validLabelName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// matcher is a compiled RequestMatch.
type matcher interface {
	matches(method, path string) bool
}

type allOf []matcher
type anyOf []matcher
type notOf struct{ m matcher }
type pathRegex struct{ re *regexp.Regexp }
type methodIs string

func (a allOf) matches(method, path string) bool {
	for _, m := range a {
		if !m.matches(method, path) {
			return false
		}
	}
	return true
}

func (a anyOf) matches(method, path string) bool {
	for _, m := range a {
		if m.matches(method, path) {
			return true
		}
	}
	return false
}

func (n notOf) matches(method, path string) bool { return !n.m.matches(method, path) }

func (p pathRegex) matches(_, path string) bool { return p.re.MatchString(path) }

func (m methodIs) matches(method, _ string) bool { return method == string(m) }

// compileMatch compiles a request condition. A path regex must match the whole path, as
// in Linkerd: it is anchored at both ends.
func compileMatch(m *destination.RequestMatch, depth int) (matcher, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("condition nested deeper than %d levels", maxDepth)
	}
	switch x := m.GetMatch().(type) {
	case *destination.RequestMatch_All:
		ms, err := compileSeq(x.All.GetMatches(), depth)
		return allOf(ms), err
	case *destination.RequestMatch_Any:
		ms, err := compileSeq(x.Any.GetMatches(), depth)
		return anyOf(ms), err
	case *destination.RequestMatch_Not:
		n, err := compileMatch(x.Not, depth+1)
		if err != nil {
			return nil, fmt.Errorf("not: %w", err)
		}
		return notOf{n}, nil
	case *destination.RequestMatch_Path:
		re, err := regexp.Compile(`^(?:` + x.Path.GetRegex() + `)$`)
		if err != nil {
			return nil, fmt.Errorf("path regex %q: %w", x.Path.GetRegex(), err)
		}
		return pathRegex{re}, nil
	case *destination.RequestMatch_Method:
		name, err := methodName(x.Method)
		if err != nil {
			return nil, err
		}
		return methodIs(name), nil
	}
	return nil, errors.New("empty request condition")
}

func compileSeq(ms []*destination.RequestMatch, depth int) ([]matcher, error) {
	out := make([]matcher, 0, len(ms))
	for i, m := range ms {
		c, err := compileMatch(m, depth+1)
		if err != nil {
			return nil, fmt.Errorf("condition %d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// methodName returns the method a condition names.
func methodName(m *httptypes.HttpMethod) (string, error) {
	switch t := m.GetType().(type) {
	case *httptypes.HttpMethod_Registered_:
		name, ok := httptypes.HttpMethod_Registered_name[int32(t.Registered)]
		if !ok {
			return "", fmt.Errorf("unknown registered method %d", t.Registered)
		}
		return name, nil
	case *httptypes.HttpMethod_Unregistered:
		if t.Unregistered == "" {
			return "", errors.New("empty method")
		}
		return t.Unregistered, nil
	}
	return "", errors.New("method condition without a method")
}

// class is a compiled ResponseClass.
type class struct {
	cond    statusMatcher
	failure bool
}

type statusMatcher interface{ matches(status int) bool }

type allStatus []statusMatcher
type anyStatus []statusMatcher
type notStatus struct{ m statusMatcher }
type statusRange struct{ min, max int }

func (a allStatus) matches(s int) bool {
	for _, m := range a {
		if !m.matches(s) {
			return false
		}
	}
	return true
}

func (a anyStatus) matches(s int) bool {
	for _, m := range a {
		if m.matches(s) {
			return true
		}
	}
	return false
}

func (n notStatus) matches(s int) bool { return !n.m.matches(s) }

func (r statusRange) matches(s int) bool { return s >= r.min && s <= r.max }

func compileClass(m *destination.ResponseMatch, depth int) (statusMatcher, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("condition nested deeper than %d levels", maxDepth)
	}
	seq := func(ms []*destination.ResponseMatch) ([]statusMatcher, error) {
		out := make([]statusMatcher, 0, len(ms))
		for i, x := range ms {
			c, err := compileClass(x, depth+1)
			if err != nil {
				return nil, fmt.Errorf("condition %d: %w", i, err)
			}
			out = append(out, c)
		}
		return out, nil
	}
	switch x := m.GetMatch().(type) {
	case *destination.ResponseMatch_All:
		ms, err := seq(x.All.GetMatches())
		return allStatus(ms), err
	case *destination.ResponseMatch_Any:
		ms, err := seq(x.Any.GetMatches())
		return anyStatus(ms), err
	case *destination.ResponseMatch_Not:
		n, err := compileClass(x.Not, depth+1)
		if err != nil {
			return nil, fmt.Errorf("not: %w", err)
		}
		return notStatus{n}, nil
	case *destination.ResponseMatch_Status:
		lo, hi := x.Status.GetMin(), x.Status.GetMax()
		if hi == 0 {
			hi = 599
		}
		if lo < 100 || hi > 599 || lo > hi {
			return nil, fmt.Errorf("invalid status range %d-%d", x.Status.GetMin(), x.Status.GetMax())
		}
		return statusRange{int(lo), int(hi)}, nil
	}
	return nil, errors.New("empty response condition")
}
