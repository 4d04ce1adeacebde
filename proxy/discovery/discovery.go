// Package discovery resolves outbound targets through the control plane's Destination
// service: Get streams turn a logical name into a balanced endpoint set, and GetProfile
// streams turn an original destination address into a service name (or a single known
// pod endpoint).
//
// Each target has one shared stream, started by the first request for it and dropped
// when no request has used the target for the idle timeout. A connection that resolved
// its original destination through Hold keeps that address's profile, and the service it
// names, cached while it is open: the idle timeout counts from when the last such
// connection closed. A stream that breaks is
// re-opened with jittered exponential backoff; meanwhile the last known endpoints stay in
// force, so traffic to already-discovered targets survives a control-plane outage.
//
// Only the control plane's answer decides that a target is not a service (Get's
// NoEndpoints{exists: false}, a profile naming no service nor endpoint, or an
// InvalidArgument or NotFound status): the proxy then forwards it to its original
// destination. A new target the control plane has not answered for yet, because it is
// slow, not ready or unreachable, makes its requests wait for the answer up to the
// resolve timeout and then fail, never go to the original destination in plaintext.
//
// Per request, resolving a known target is a lock-free map load and an atomic flag.
package discovery

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/outpolicy"
)

// Defaults for Options.
const (
	DefaultIdleTimeout = 90 * time.Second
	// DefaultResolveTimeout is how long Linkerd's proxy lets a request wait on a
	// control-plane lookup (its control client's failfast timeout).
	DefaultResolveTimeout = 10 * time.Second
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 3 * time.Second
)

// Options configures a Resolver.
type Options struct {
	// Client is the Destination service client; required.
	Client destination.DestinationClient
	// ContextToken is sent with every request (LINKERD2_PROXY_DESTINATION_CONTEXT).
	ContextToken string
	// IdleTimeout drops a target's streams after it has had no requests for this long.
	IdleTimeout time.Duration
	// ResolveTimeout bounds how long a request for a new target waits for the control
	// plane's first answer. A request that waited this long fails (balance.ErrFailfast),
	// and so do later ones at once (balance.ErrUnavailable) until the answer arrives.
	ResolveTimeout time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential backoff between attempts to
	// re-open a broken stream.
	MinBackoff, MaxBackoff time.Duration
	// Metrics records the traffic of discovered endpoints; required.
	Metrics *metrics.Registry
	// Balancer configures each target's balancer.
	Balancer balance.Options
	// Policies, when set, follows the outbound policy (OutboundPolicies.Watch) of each
	// service target: its HTTPRoutes then decide where the target's requests go, unless
	// the target's ServiceProfile has routes. A new target's first request waits for the
	// policy at most ResolveTimeout, once.
	Policies *outpolicy.Watcher
	// Log receives stream state changes.
	Log *slog.Logger
}

// Resolver implements outbound.Discovery over the Destination API. Safe for concurrent
// use; Close stops every stream.
type Resolver struct {
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc

	names    sync.Map // authority -> *target
	profiles sync.Map // netip.AddrPort or nameKey -> *profile

	idsMu sync.RWMutex
	ids   map[netip.AddrPort]*peerID

	stale atomic.Int64 // streams currently disconnected while serving last known state
	wg    sync.WaitGroup
}

type peerID struct {
	id        string
	transport uint16
	refs      int
}

// New returns a resolver and starts its idle sweeper.
func New(opts Options) *Resolver {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.ResolveTimeout <= 0 {
		opts.ResolveTimeout = DefaultResolveTimeout
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Resolver{opts: opts, ctx: ctx, cancel: cancel, ids: map[netip.AddrPort]*peerID{}}
	r.wg.Add(1)
	go r.sweep()
	return r
}

// Close stops every stream and the sweeper. Backends already handed out keep their last
// endpoints.
func (r *Resolver) Close() {
	r.cancel()
	r.wg.Wait()
}

// Stale returns the number of streams that are disconnected and serving their last known
// state.
func (r *Resolver) Stale() int { return int(r.stale.Load()) }

// Identity returns the TLS identity discovery gave the endpoint at addr, or "" when it
// has none (the connection is then plain TCP). It is called once per new connection.
func (r *Resolver) Identity(addr netip.AddrPort) string {
	r.idsMu.RLock()
	p := r.ids[addr]
	r.idsMu.RUnlock()
	if p == nil {
		return ""
	}
	return p.id
}

// OpaqueTransport returns the inbound port discovery said the meshed endpoint at addr
// accepts opaque transport connections on (ProtocolHint.opaque_transport), or 0.
func (r *Resolver) OpaqueTransport(addr netip.AddrPort) uint16 {
	r.idsMu.RLock()
	p := r.ids[addr]
	r.idsMu.RUnlock()
	if p == nil {
		return 0
	}
	return p.transport
}

func (r *Resolver) addID(addr netip.AddrPort, id string, transport uint16) {
	if id == "" {
		return
	}
	r.idsMu.Lock()
	p := r.ids[addr]
	if p == nil {
		p = &peerID{}
		r.ids[addr] = p
	}
	p.id, p.transport = id, transport
	p.refs++
	r.idsMu.Unlock()
}

func (r *Resolver) dropID(addr netip.AddrPort, id string) {
	if id == "" {
		return
	}
	r.idsMu.Lock()
	if p := r.ids[addr]; p != nil {
		if p.refs--; p.refs <= 0 {
			delete(r.ids, addr)
		}
	}
	r.idsMu.Unlock()
}

// Name resolves a logical authority "name:port" to its balanced backend. It returns
// ok=false with a nil error when the control plane says the name is not a service, and an
// error when the control plane has not answered for a new name (see
// Options.ResolveTimeout) or ctx ends first.
//
// The backend carries the routes of the name's ServiceProfile (GetProfile for the name);
// routes are optional, so a profile that has not arrived in time does not fail the
// request.
func (r *Resolver) Name(ctx context.Context, authority string) (*forward.Backend, bool, error) {
	be, ok, err := r.name(ctx, authority)
	if !ok || err != nil {
		return nil, false, err
	}
	p, err := readyProfile(ctx, r, nameKey(authority), func() *profile { return newNameProfile(r, authority, portOf(authority)) })
	if err != nil {
		r.opts.Log.Debug("serving a name without its profile routes", "target", authority, "error", err)
	}
	p.waitPolicy(ctx)
	return p.withRoutes(be), true, nil
}

// portOf returns the port of an authority "host:port", 0 when it has none.
func portOf(authority string) uint16 {
	i := strings.LastIndexByte(authority, ':')
	if i < 0 {
		return 0
	}
	n, err := strconv.ParseUint(authority[i+1:], 10, 16)
	if err != nil {
		return 0
	}
	return uint16(n)
}

// name resolves a logical authority to its target's backend, without profile routes.
func (r *Resolver) name(ctx context.Context, authority string) (*forward.Backend, bool, error) {
	for {
		var t *target
		if v, ok := r.names.Load(authority); ok {
			t = v.(*target)
		} else {
			t = newTarget(r, authority)
			if v, loaded := r.names.LoadOrStore(authority, t); loaded {
				t = v.(*target)
			} else {
				r.wg.Add(1)
				go t.run()
			}
		}
		t.touch()
		if t.resolved() {
			be, ok := t.backend()
			return be, ok, nil
		}
		be, ok, err := t.wait(ctx, r.opts.ResolveTimeout)
		if errors.Is(err, errSwept) {
			// Dropped between the lookup and the wait: start a new stream.
			r.names.CompareAndDelete(authority, t)
			continue
		}
		return be, ok, err
	}
}

// Addr resolves an original destination through GetProfile: a service address becomes
// its service's backend, a known pod address a single-endpoint backend carrying the pod's
// identity and protocol hint. It returns ok=false with a nil error for addresses the
// control plane says it does not know, so they are forwarded as they are, and an error
// when the control plane has not answered (see Options.ResolveTimeout) or ctx ends first.
func (r *Resolver) Addr(ctx context.Context, dst netip.AddrPort) (*forward.Backend, bool, error) {
	p, err := r.readyAddrProfile(ctx, dst)
	if err != nil {
		return nil, false, err
	}
	st := p.known()
	if st == nil {
		return nil, false, nil
	}
	if st.name != "" {
		be, ok, err := r.name(ctx, st.name)
		if !ok || err != nil {
			return nil, false, err
		}
		p.waitPolicy(ctx)
		return p.withRoutes(be), true, nil
	}
	if st.endpoint != nil {
		return st.endpoint, true, nil
	}
	return nil, false, nil
}

// Opaque reports whether the profile of dst marks it as an opaque-protocol port, so its
// connections skip protocol detection. It starts the address's GetProfile stream when
// needed and waits at most the resolve timeout for its first answer (false without one:
// the connection's requests then fail in Addr); afterwards it is a map load.
func (r *Resolver) Opaque(ctx context.Context, dst netip.AddrPort) bool {
	p, err := r.readyAddrProfile(ctx, dst)
	if err != nil {
		return false
	}
	st := p.latest.Load()
	return st != nil && st.opaque
}

// Hold keeps the profile of dst, and the service and name profile it names, cached until
// release is called, however long no request uses them: a connection holds its original
// destination while it is open, so a new connection to the same target finds the answer
// cached even when the control plane is unreachable. It starts the address's GetProfile
// stream when needed and does not wait for an answer. The idle timeout counts from the
// last release. release must be called exactly once.
func (r *Resolver) Hold(dst netip.AddrPort) (release func()) {
	for {
		p := r.profile(dst)
		if p.hold() {
			return p.release
		}
		// The sweeper dropped p after the map load: start a new stream.
		r.profiles.CompareAndDelete(dst, p)
	}
}

func (r *Resolver) profile(dst netip.AddrPort) *profile {
	return profileOf(r, dst, func() *profile { return newProfile(r, dst) })
}

// readyAddrProfile is readyProfile for the address dst.
func (r *Resolver) readyAddrProfile(ctx context.Context, dst netip.AddrPort) (*profile, error) {
	return readyProfile(ctx, r, dst, func() *profile { return newProfile(r, dst) })
}

// readyProfile returns the profile stream of key (started with newP when there is none)
// once the control plane has answered for it, or watch.waitReady's error. A stream the
// sweeper dropped before the request could wait on it is replaced by a new one.
func readyProfile[K nameKey | netip.AddrPort](ctx context.Context, r *Resolver, key K, newP func() *profile) (*profile, error) {
	for {
		p := profileOf(r, key, newP)
		p.touch()
		err := p.waitReady(ctx, r.opts.ResolveTimeout)
		if !errors.Is(err, errSwept) {
			return p, err
		}
		r.profiles.CompareAndDelete(key, p)
	}
}

// nameKey is the key of a logical name's profile in Resolver.profiles, whose other keys
// are the addresses (netip.AddrPort) of address profiles.
type nameKey string

// profileOf returns the profile stream of key, starting it with newP when there is none.
// It is generic so that looking up an existing profile converts key to an interface
// without allocating.
func profileOf[K nameKey | netip.AddrPort](r *Resolver, key K, newP func() *profile) *profile {
	if v, ok := r.profiles.Load(key); ok {
		return v.(*profile)
	}
	p := newP()
	if v, loaded := r.profiles.LoadOrStore(key, p); loaded {
		return v.(*profile)
	}
	r.wg.Add(1)
	go p.run()
	return p
}

// sweep drops targets that have not been used for the idle timeout and are not held.
func (r *Resolver) sweep() {
	defer r.wg.Done()
	tick := max(r.opts.IdleTimeout/4, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case now := <-t.C:
			r.keepHeldServices()
			r.names.Range(func(k, v any) bool {
				if v.(*target).idle(now, r.opts.IdleTimeout) {
					r.names.CompareAndDelete(k, v)
					v.(*target).stop()
				}
				return true
			})
			r.profiles.Range(func(k, v any) bool {
				if v.(*profile).idle(now, r.opts.IdleTimeout) {
					r.profiles.CompareAndDelete(k, v)
					v.(*profile).stop()
				}
				return true
			})
		}
	}
}

// keepHeldServices marks the service, and the name profile, that a held address profile
// names as used: requests on a held connection route by that name, and may be far apart.
func (r *Resolver) keepHeldServices() {
	r.profiles.Range(func(_, v any) bool {
		p := v.(*profile)
		if p.holds.Load() <= 0 {
			return true
		}
		st := p.latest.Load()
		if st == nil || st.name == "" {
			return true
		}
		if t, ok := r.names.Load(st.name); ok {
			t.(*target).touch()
		}
		if np, ok := r.profiles.Load(nameKey(st.name)); ok {
			np.(*profile).touch()
		}
		return true
	})
}

// usage tracks when a stream was last used, with one atomic load per request in the
// common case, and how many connections hold it.
type usage struct {
	used     atomic.Bool
	lastSeen atomic.Int64 // unix nanoseconds, updated by the sweeper
	// holds counts the connections holding the stream; -1 once the sweeper dropped it,
	// after which it cannot be held.
	holds atomic.Int64
}

func (u *usage) touch() {
	if !u.used.Load() {
		u.used.Store(true)
	}
}

// hold adds a holder; it reports false when the stream was already dropped.
func (u *usage) hold() bool {
	for {
		n := u.holds.Load()
		if n < 0 {
			return false
		}
		if u.holds.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release removes a holder; the idle timeout starts over from now.
func (u *usage) release() {
	u.touch()
	u.holds.Add(-1)
}

// idle reports whether the stream has had no holder and no use for timeout; a stream it
// reports idle is marked dropped and can no longer be held.
func (u *usage) idle(now time.Time, timeout time.Duration) bool {
	if u.used.Swap(false) || u.holds.Load() > 0 {
		u.lastSeen.Store(now.UnixNano())
		return false
	}
	if now.Sub(time.Unix(0, u.lastSeen.Load())) < timeout {
		return false
	}
	return u.holds.CompareAndSwap(0, -1)
}

// backoff returns the jittered delay before attempt n (0-based) to re-open a stream.
func (r *Resolver) backoff(n int) time.Duration {
	d := r.opts.MinBackoff << min(n, 20)
	if d > r.opts.MaxBackoff || d <= 0 {
		d = r.opts.MaxBackoff
	}
	// Full jitter between half and the whole delay.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// notAService reports whether a stream error means the target is not a service: the
// proxy forwards it to its original destination instead.
func notAService(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound:
		return true
	}
	return false
}
