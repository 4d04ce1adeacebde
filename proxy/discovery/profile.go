package discovery

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/outpolicy"
	"github.com/l5d-go/l5d/proxy/routes"
)

// profile is the GetProfile stream of one original destination address or of one
// logical name "name:port".
type profile struct {
	watch
	// path is what the stream asks for; dst is the address, invalid for a name.
	path   string
	port   uint16
	dst    netip.AddrPort
	latest atomic.Pointer[profileState]
	// routes are the latest ServiceProfile routes; routed is the backend last handed out
	// with them.
	routes routes.Current
	routed atomic.Pointer[forward.Backend]
	// policy routes a service target's requests by its outbound policy; started on
	// first use, nil without a policy watcher.
	policyOnce sync.Once
	policy     atomic.Pointer[outpolicy.Router]
	// split is the profile's dstOverrides, nil when they keep traffic on its service;
	// router routes by it, else by the outbound policy (made on first use).
	split      atomic.Pointer[split]
	routerOnce sync.Once
	router     *profileRouter

	// Owned by the stream goroutine: the identity registered for a pod endpoint.
	epAddr netip.AddrPort
	epID   string
}

// profileState is what the latest profile says about an address.
type profileState struct {
	// name is the service authority "fqdn:port" the address belongs to, or "".
	name string
	// endpoint is the backend of a known pod address when name is empty.
	endpoint *forward.Backend
	opaque   bool
}

func newProfile(r *Resolver, dst netip.AddrPort) *profile {
	p := &profile{path: dst.String(), port: dst.Port(), dst: dst}
	p.init(r, p.path)
	return p
}

// newNameProfile returns the profile stream of a logical authority "name:port".
func newNameProfile(r *Resolver, authority string, port uint16) *profile {
	p := &profile{path: authority, port: port}
	p.init(r, "profile of "+authority)
	return p
}

// withRoutes returns be carrying the profile's routes and the target's outbound policy
// router, or be itself when the profile has no routes and there is no policy watcher.
// The combined backend is kept while be stays the same.
func (p *profile) withRoutes(be *forward.Backend) *forward.Backend {
	pr := p.policyRouter()
	if p.routes.Load() == nil && pr == nil && p.split.Load() == nil {
		return be
	}
	if w := p.routed.Load(); w != nil && w.Balancer == be.Balancer {
		return w
	}
	w := &forward.Backend{Name: be.Name, Balancer: be.Balancer, Routes: &p.routes, Policy: p.profileRouter(pr)}
	p.routed.Store(w)
	return w
}

// profileRouter returns the profile's router (dstOverrides, else pr), made once.
func (p *profile) profileRouter(pr *outpolicy.Router) *profileRouter {
	p.routerOnce.Do(func() {
		p.router = &profileRouter{p: p}
		if pr != nil {
			p.router.policy = pr
		}
	})
	return p.router
}

// policyRouter returns the outbound policy router of the profile's service target,
// starting the target's policy watch (for the address, or the name) on first use; nil
// without a policy watcher.
func (p *profile) policyRouter() *outpolicy.Router {
	if p.r.opts.Policies == nil {
		return nil
	}
	if pr := p.policy.Load(); pr != nil {
		return pr
	}
	p.policyOnce.Do(func() {
		cur := p.r.opts.Policies.Watch(p.ctx, p.dst, p.path)
		p.policy.Store(outpolicy.NewRouter(cur, &p.routes, p.r.name))
	})
	return p.policy.Load()
}

// waitPolicy waits, once per target and at most the resolve timeout, for the first
// answer of the target's policy watch; without one the target routes without a policy.
func (p *profile) waitPolicy(ctx context.Context) {
	if pr := p.policyRouter(); pr != nil {
		if err := pr.WaitReady(ctx, p.r.opts.ResolveTimeout); err != nil {
			p.r.opts.Log.Debug("routing without an outbound policy", "target", p.path, "error", err)
		}
	}
}

// known returns the latest profile of an answered stream, nil when the control plane
// said the address is not a service.
func (p *profile) known() *profileState {
	if p.state.Load() != stateKnown {
		return nil
	}
	return p.latest.Load()
}

func (p *profile) run() {
	defer func() { p.r.dropID(p.epAddr, p.epID) }()
	p.loop(p.path, p.stream)
}

func (p *profile) stream() (bool, error) {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	s, err := p.r.opts.Client.GetProfile(ctx, &destination.GetDestination{
		Scheme: "k8s", Path: p.path, ContextToken: p.r.opts.ContextToken})
	if err != nil {
		return false, fmt.Errorf("opening Destination.GetProfile for %s: %w", p.path, err)
	}
	got := false
	for {
		dp, err := s.Recv()
		if err != nil {
			return got, fmt.Errorf("Destination.GetProfile for %s: %w", p.path, err)
		}
		if !got {
			p.connected(p.path)
		}
		got = true
		p.apply(dp)
	}
}

func (p *profile) apply(dp *destination.DestinationProfile) {
	st := &profileState{opaque: dp.GetOpaqueProtocol()}
	if fqn := strings.TrimSuffix(dp.GetFullyQualifiedName(), "."); fqn != "" {
		st.name = strings.ToLower(fqn) + ":" + strconv.Itoa(int(p.port))
	}
	p.applyRoutes(dp, st.name)
	self := st.name
	if self == "" {
		self = p.path
	}
	p.split.Store(compileSplit(dp, self, p.port))
	var epAddr netip.AddrPort
	var epID string
	var epTransport uint16
	if wa := dp.GetEndpoint(); st.name == "" && wa != nil && p.dst.IsValid() {
		if addr, ok := tcpAddr(wa.GetAddr()); ok {
			e := p.r.endpointFor("", addr, nil, wa)
			bal := balance.New[*forward.Endpoint](p.r.opts.Balancer)
			bal.Set([]*balance.Endpoint[*forward.Endpoint]{e.bep})
			st.endpoint = &forward.Backend{Name: addr.String(), Balancer: bal}
			epAddr, epID, epTransport = addr, e.id, e.transport
		}
	}
	p.r.addID(epAddr, epID, epTransport)
	p.r.dropID(p.epAddr, p.epID)
	p.epAddr, p.epID = epAddr, epID
	p.latest.Store(st)
	if !p.dst.IsValid() {
		p.setState(stateKnown) // a name's profile only carries routes
		return
	}
	if st.name == "" && st.endpoint == nil {
		p.setState(stateUnknown)
		return
	}
	p.setState(stateKnown)
}

// applyRoutes compiles the profile's routes, their metrics labelled with the service
// (name, or the stream's path when the profile names none).
func (p *profile) applyRoutes(dp *destination.DestinationProfile, name string) {
	dst := name
	if dst == "" {
		dst = p.path
	}
	t, err := routes.Compile(dp, routes.Options{Metrics: p.r.opts.Metrics,
		Labels: metrics.Labels("direction", "outbound", "dst", dst), Previous: p.routes.Load()})
	if err != nil {
		p.r.opts.Log.Warn("ServiceProfile routes left out", "target", p.path, "error", err)
	}
	p.routes.Store(t)
}
