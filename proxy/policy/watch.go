package policy

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/l5d-go/l5d/proto/gen/inbound"
)

// Watcher keeps the policy of each inbound port the proxy has seen traffic on.
type Watcher struct {
	client   pb.InboundServerPoliciesClient
	workload string
	def      *Port
	log      *slog.Logger
	ctx      context.Context

	mu    sync.RWMutex
	ports map[uint16]*atomic.Pointer[Port]
}

// NewWatcher returns a watcher asking client about workload's ports until ctx ends;
// client may be nil (no controller: def applies everywhere).
func NewWatcher(ctx context.Context, client pb.InboundServerPoliciesClient, workload string, def *Port, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{client: client, workload: workload, def: def, log: log, ctx: ctx, ports: map[uint16]*atomic.Pointer[Port]{}}
}

// Port returns the current policy of port, starting its watch on first use.
func (w *Watcher) Port(port uint16) *Port {
	if w.client == nil {
		return w.def
	}
	w.mu.RLock()
	p := w.ports[port]
	w.mu.RUnlock()
	if p != nil {
		return p.Load()
	}
	w.mu.Lock()
	if p = w.ports[port]; p == nil {
		p = new(atomic.Pointer[Port])
		p.Store(w.def)
		w.ports[port] = p
		go w.watch(port, p)
	}
	w.mu.Unlock()
	return p.Load()
}

// watch follows WatchPort for port, reconnecting with jittered backoff and keeping the
// last answer while the controller is away.
func (w *Watcher) watch(port uint16, dst *atomic.Pointer[Port]) {
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
				dst.Store(p)
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
