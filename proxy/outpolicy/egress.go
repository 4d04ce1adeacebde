package outpolicy

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l5d-go/l5d/proxy/forward"
)

// EgressKind is the parent kind of the policy of a destination an EgressNetwork governs.
const EgressKind = "EgressNetwork"

// maxEgressTargets bounds the destinations whose policies are followed at once; past it
// the least recently used one's stream is dropped (and re-opened when it is used again).
const maxEgressTargets = 1000

// Egress applies the outbound policies of destinations outside the cluster's networks:
// the policy controller answers for such an address with the policy of the
// EgressNetwork covering it, whose routes allow, refuse (Deny: 403 "traffic not
// allowed") or send elsewhere what the client sends. It is safe for concurrent use.
type Egress struct {
	w       *Watcher
	ctx     context.Context
	wait    time.Duration
	resolve ResolveFunc

	// byAddr maps each followed destination to its *egressTarget, read without locks;
	// mu serializes additions and evictions, which keep targets in step.
	byAddr  sync.Map
	mu      sync.Mutex
	targets map[netip.AddrPort]*egressTarget
}

type egressTarget struct {
	cur    *Current
	cancel context.CancelFunc
	used   atomic.Int64 // unix nanoseconds of the last request
	// routed is the forwarding backend wrapped with the policy router, kept while the
	// forwarding backend stays the same.
	routed atomic.Pointer[forward.Backend]
}

// Egress returns the egress policies of w's client until ctx ends. The first request to
// a destination waits at most wait for the controller's answer (without one it is
// forwarded as without a policy controller); resolve finds the Services a route sends
// requests to.
func (w *Watcher) Egress(ctx context.Context, wait time.Duration, resolve ResolveFunc) *Egress {
	return &Egress{w: w, ctx: ctx, wait: wait, resolve: resolve, targets: map[netip.AddrPort]*egressTarget{}}
}

// Route returns be, the backend forwarding to dst, carrying the router of dst's egress
// policy when an EgressNetwork governs dst; otherwise be itself.
func (e *Egress) Route(ctx context.Context, dst netip.AddrPort, be *forward.Backend) *forward.Backend {
	t := e.target(dst)
	t.used.Store(time.Now().UnixNano())
	if err := t.cur.WaitReady(ctx, e.wait); err != nil {
		e.w.opts.Log.Debug("forwarding without an egress policy", "target", dst, "error", err)
		return be
	}
	if p := t.cur.Load(); p == nil || p.parent.Kind != EgressKind {
		return be
	}
	if w := t.routed.Load(); w != nil && w.Balancer == be.Balancer {
		return w
	}
	self := dst.String()
	resolve := func(ctx context.Context, authority string) (*forward.Backend, bool, error) {
		if authority == self {
			return be, true, nil
		}
		if e.resolve == nil {
			return nil, false, nil
		}
		return e.resolve(ctx, authority)
	}
	w := &forward.Backend{Name: be.Name, Balancer: be.Balancer, Policy: NewRouter(t.cur, nil, resolve)}
	t.routed.Store(w)
	return w
}

// target returns the policy watch of dst, starting it on first use.
func (e *Egress) target(dst netip.AddrPort) *egressTarget {
	if t, ok := e.byAddr.Load(dst); ok {
		return t.(*egressTarget)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.targets[dst]; t != nil {
		return t
	}
	if len(e.targets) >= maxEgressTargets {
		var oldest netip.AddrPort
		var at int64
		for a, t := range e.targets {
			if u := t.used.Load(); at == 0 || u < at {
				oldest, at = a, u
			}
		}
		e.targets[oldest].cancel()
		delete(e.targets, oldest)
		e.byAddr.Delete(oldest)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	t := &egressTarget{cur: e.w.Watch(ctx, dst, ""), cancel: cancel}
	e.targets[dst] = t
	e.byAddr.Store(dst, t)
	return t
}
