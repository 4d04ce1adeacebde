package discovery

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// split is a ServiceProfile's dstOverrides: the services its target's requests are
// spread over, by weight (Linkerd writes weights on a 10,000 scale; only their ratios
// matter here).
type split struct {
	backends []splitBackend
	total    uint64
}

type splitBackend struct {
	// authority is the service "name:port"; self marks the profile's own service, whose
	// share is served as if there were no split.
	authority string
	self      bool
	weight    uint64
}

// compileSplit returns the split of a profile whose service is self ("name:port", or
// the stream's path), nil when its dstOverrides do not move traffic away from it: none,
// only itself, or no weight at all.
func compileSplit(dp *destination.DestinationProfile, self string, port uint16) *split {
	s := &split{}
	moves := false
	for _, d := range dp.GetDstOverrides() {
		authority := overrideAuthority(d.GetAuthority(), port)
		if authority == "" || d.GetWeight() == 0 {
			continue
		}
		b := splitBackend{authority: authority, self: authority == self, weight: uint64(d.GetWeight())}
		moves = moves || !b.self
		s.backends = append(s.backends, b)
		s.total += b.weight
	}
	if !moves {
		return nil
	}
	return s
}

// overrideAuthority normalizes a dstOverride's authority: lower case, no trailing dot
// on the name, port added when it has none; "" when it is empty.
func overrideAuthority(a string, port uint16) string {
	a = strings.ToLower(strings.TrimSpace(a))
	if a == "" {
		return ""
	}
	host, p := a, strconv.Itoa(int(port))
	if i := strings.LastIndexByte(a, ':'); i >= 0 && !strings.HasSuffix(a, "]") {
		host, p = a[:i], a[i+1:]
	}
	return strings.TrimSuffix(host, ".") + ":" + p
}

// pick chooses a backend at random by weight.
func (s *split) pick() *splitBackend {
	n := rand.Uint64N(s.total)
	for i := range s.backends {
		if n < s.backends[i].weight {
			return &s.backends[i]
		}
		n -= s.backends[i].weight
	}
	return &s.backends[len(s.backends)-1]
}

// profileRouter is the forward.PolicyRouter of a profile's target: the profile's
// dstOverrides when it has some (a ServiceProfile takes precedence over an outbound
// policy, as in Linkerd), else the target's outbound policy router (which may be nil).
type profileRouter struct {
	p      *profile
	policy forward.PolicyRouter

	mu       sync.Mutex
	backends map[string]*forward.Backend // authority -> the backend with the profile's routes
}

// Active reports whether requests leave the target's own backend: a split, or an active
// outbound policy.
func (pr *profileRouter) Active() bool {
	return pr.p.split.Load() != nil || pr.policy != nil && pr.policy.Active()
}

// RouteRequest sends r to one of the profile's dstOverrides, chosen by weight, with the
// profile's routes (timeouts, retries, route metrics) and r's authority rewritten to the
// chosen service, as Linkerd does, so its requests are counted under that authority.
// The profile's own service, and an override the control plane says is not a service,
// serve r as the target does without a split.
func (pr *profileRouter) RouteRequest(r *http.Request) (forward.PolicyDecision, error) {
	s := pr.p.split.Load()
	if s == nil {
		if pr.policy == nil {
			return forward.PolicyDecision{}, nil
		}
		return pr.policy.RouteRequest(r)
	}
	b := s.pick()
	if b.self {
		return forward.PolicyDecision{}, nil
	}
	be, ok, err := pr.p.r.name(r.Context(), b.authority)
	if err != nil {
		return forward.PolicyDecision{}, fmt.Errorf("discovering dstOverride %s: %w", b.authority, err)
	}
	if !ok {
		pr.p.r.opts.Log.Debug("a dstOverride is not a service; serving the target itself", "target", pr.p.path, "override", b.authority)
		return forward.PolicyDecision{}, nil
	}
	r.Host = b.authority
	return forward.PolicyDecision{Backend: pr.withRoutes(b.authority, be)}, nil
}

// withRoutes returns be carrying the profile's routes, made once per backend balancer.
func (pr *profileRouter) withRoutes(authority string, be *forward.Backend) *forward.Backend {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if w := pr.backends[authority]; w != nil && w.Balancer == be.Balancer {
		return w
	}
	if pr.backends == nil || len(pr.backends) > 100 {
		pr.backends = map[string]*forward.Backend{}
	}
	w := &forward.Backend{Name: be.Name, Balancer: be.Balancer, Routes: &pr.p.routes}
	pr.backends[authority] = w
	return w
}

// DefaultMetrics returns the outbound policy's default-route series of a request the
// target serves itself; none while the profile splits its traffic.
func (pr *profileRouter) DefaultMetrics(be *forward.Backend, host string) (route, backend *metrics.Requests) {
	if pr.policy == nil || pr.p.split.Load() != nil {
		return nil, nil
	}
	return pr.policy.DefaultMetrics(be, host)
}

var _ forward.PolicyRouter = (*profileRouter)(nil)

// opaqueRouter is what an outbound policy router offers opaque connections
// (outpolicy.Router: TCPRoutes and TLSRoutes).
type opaqueRouter interface {
	PickOpaque(ctx context.Context) (be *forward.Backend, ok bool, err error)
	RoutesTLS() bool
	PickTLS(ctx context.Context, sni string) (be *forward.Backend, ok bool, err error)
}

// PickOpaque routes an opaque connection by the target's outbound policy: dstOverrides
// split HTTP requests only.
func (pr *profileRouter) PickOpaque(ctx context.Context) (*forward.Backend, bool, error) {
	if o, ok := pr.policy.(opaqueRouter); ok {
		return o.PickOpaque(ctx)
	}
	return nil, false, nil
}

// RoutesTLS reports whether the target's outbound policy routes connections by TLS server
// name.
func (pr *profileRouter) RoutesTLS() bool {
	o, ok := pr.policy.(opaqueRouter)
	return ok && o.RoutesTLS()
}

// PickTLS routes a TLS connection with server name sni by the target's outbound policy.
func (pr *profileRouter) PickTLS(ctx context.Context, sni string) (*forward.Backend, bool, error) {
	if o, ok := pr.policy.(opaqueRouter); ok {
		return o.PickTLS(ctx, sni)
	}
	return nil, false, nil
}
