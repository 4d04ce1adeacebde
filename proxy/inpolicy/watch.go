package inpolicy

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/l5d-go/l5d/proto/gen/inbound"
)

// DefaultWait is how long Watcher.Port holds a caller for the first answer about a port
// when Watcher.Wait is not set.
const DefaultWait = 10 * time.Second

// Unavailable is the policy of a port whose policy the controller has not given in time:
// it authorizes nobody (the proxy fails closed), and is counted as srv_kind="default",
// srv_name="unavailable".
var Unavailable = func() *Port {
	p := &Port{Server: "unavailable", ServerKind: "default"}
	p.setDefaultRoute(nil)
	return p
}()

// Watcher keeps the policy of each inbound port the proxy has seen traffic on.
//
// With a controller, a port's policy is unknown until the controller's first valid answer
// about it: until then callers are held (see Port), and the proxy is not ready (see
// WaitKnown). Once known, a policy is kept, and the last answer stays in force while the
// controller is unreachable. Without a controller, the default policy applies everywhere.
type Watcher struct {
	// Wait bounds how long Port holds a caller for a port's first answer (DefaultWait when
	// zero). Set it before the first call.
	Wait time.Duration
	// DefaultUntilKnown makes the default policy apply to a port until the controller's
	// first answer about it, without holding anyone: for the proxies of the control plane
	// itself, which the mesh bootstraps through (the policy controller cannot answer
	// anyone before the identity controller has certified its proxy, nor be found before
	// its pod is ready). Set it before the first call.
	DefaultUntilKnown bool

	client   pb.InboundServerPoliciesClient
	workload string
	def      *Port
	log      *slog.Logger
	ctx      context.Context

	mu    sync.RWMutex
	ports map[uint16]*portWatch
}

// portWatch is the state of one watched port.
type portWatch struct {
	policy atomic.Pointer[Port] // nil until the first answer
	known  chan struct{}        // closed at the first answer
	// warned is set once a caller gave up waiting, so the timeout is logged once.
	warned atomic.Bool
}

// NewWatcher returns a watcher asking client about workload's ports until ctx ends;
// client may be nil (no controller: def applies everywhere).
func NewWatcher(ctx context.Context, client pb.InboundServerPoliciesClient, workload string, def *Port, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{client: client, workload: workload, def: def, log: log, ctx: ctx, ports: map[uint16]*portWatch{}}
}

// Port returns the current policy of port, starting its watch on first use. While the
// controller has not answered about port, Port waits for the answer, for at most Wait (or
// until the watcher's context ends), and then returns Unavailable, which refuses
// everyone. Without a controller it returns the default policy at once.
func (w *Watcher) Port(port uint16) *Port {
	if w.client == nil {
		return w.def
	}
	pw := w.watch(port)
	if p := pw.policy.Load(); p != nil {
		return p
	}
	if w.DefaultUntilKnown {
		return w.def
	}
	if w.await(pw) {
		return pw.policy.Load()
	}
	if pw.warned.CompareAndSwap(false, true) {
		w.log.Warn("no inbound policy from the controller in time; refusing the port's connections until it answers", "port", port, "wait", w.wait())
	}
	return Unavailable
}

// Known waits, like Port, for the policy of port and reports whether it is known (always
// true without a controller, or with DefaultUntilKnown).
func (w *Watcher) Known(port uint16) bool {
	if w.client == nil || w.DefaultUntilKnown {
		w.Port(port)
		return true
	}
	pw := w.watch(port)
	return pw.policy.Load() != nil || w.await(pw)
}

// WaitKnown starts watching ports and waits until the controller has answered about each
// of them, or ctx ends (its error is returned then). Without a controller, or with
// DefaultUntilKnown, it starts the watches and returns nil at once.
func (w *Watcher) WaitKnown(ctx context.Context, ports []uint16) error {
	if w.client == nil {
		return nil
	}
	if w.DefaultUntilKnown {
		for _, p := range ports {
			w.watch(p)
		}
		return nil
	}
	watches := make([]*portWatch, len(ports))
	for i, p := range ports {
		watches[i] = w.watch(p)
	}
	for _, pw := range watches {
		select {
		case <-pw.known:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (w *Watcher) wait() time.Duration {
	if w.Wait > 0 {
		return w.Wait
	}
	return DefaultWait
}

// await waits for pw's first answer for at most Wait; it reports whether it came.
func (w *Watcher) await(pw *portWatch) bool {
	timer := time.NewTimer(w.wait())
	defer timer.Stop()
	select {
	case <-pw.known:
		return true
	case <-timer.C:
	case <-w.ctx.Done():
	}
	return false
}

// watch returns the state of port, starting its watch on first use.
func (w *Watcher) watch(port uint16) *portWatch {
	w.mu.RLock()
	pw := w.ports[port]
	w.mu.RUnlock()
	if pw != nil {
		return pw
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if pw = w.ports[port]; pw == nil {
		pw = &portWatch{known: make(chan struct{})}
		w.ports[port] = pw
		go w.run(port, pw)
	}
	return pw
}

// run follows WatchPort for port, reconnecting with jittered backoff and keeping the
// last answer while the controller is away.
func (w *Watcher) run(port uint16, dst *portWatch) {
	backoff := 100 * time.Millisecond
	for w.ctx.Err() == nil {
		stream, err := w.client.WatchPort(w.ctx, &pb.PortSpec{Workload: w.workload, Port: uint32(port)})
		if err == nil {
			for {
				s, err := stream.Recv()
				if err != nil {
					if w.ctx.Err() == nil {
						w.log.Warn("inbound policy stream ended; keeping the last policy", "port", port, "error", err)
					}
					break
				}
				p, err := FromProto(s)
				if err != nil {
					w.log.Warn("ignoring an invalid inbound policy; keeping the last one", "port", port, "error", err)
					continue
				}
				if dst.policy.Swap(p) == nil {
					close(dst.known)
				}
				backoff = 100 * time.Millisecond
			}
		}
		d := backoff/2 + rand.N(backoff)
		backoff = min(2*backoff, 5*time.Second)
		select {
		case <-w.ctx.Done():
			return
		case <-time.After(d):
		}
	}
}
