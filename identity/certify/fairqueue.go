package certify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"google.golang.org/grpc/peer"
)

// Defaults of the TokenReview admission (see ReviewOptions).
const (
	// DefaultMaxWaitingReviews bounds callers waiting for a TokenReview slot, all peers
	// together.
	DefaultMaxWaitingReviews = 512
	// DefaultMaxWaitingPerPeer bounds callers of one peer waiting for a slot.
	DefaultMaxWaitingPerPeer = 32
)

// ErrOverloaded means a review was refused at once because too many callers (in all, or
// from the same peer) are already waiting for a TokenReview slot.
var ErrOverloaded = errors.New("too many Certify calls are waiting for a TokenReview")

// Shed reasons, the label of identity_tokenreviews_shed_total.
const (
	ShedPeerQueueFull = "peer_queue_full"
	ShedQueueFull     = "queue_full"
)

// DefaultLocalProxies are the loopback networks: in a Linkerd install the identity pod's
// own proxy terminates the callers' TLS and forwards every call from 127.0.0.1.
var DefaultLocalProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Caller names the caller of a Certify call for the fair sharing of TokenReview slots:
// "address <ip>" for a gRPC peer outside localProxies; "identity <identity>" for a peer
// inside them (a proxy that hides the real caller's address: keying by it would make
// every caller one) or a call without a gRPC peer. The identity is the one requested,
// which Service has checked the token's claims to name before any review, so a flood of
// forged tokens under one name shares that name's slots; it is unverified, so a flood
// spread over many names is bounded only by the global limits.
func Caller(ctx context.Context, identity string, localProxies []netip.Prefix) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		var addr netip.Addr
		if a, ok := p.Addr.(*net.TCPAddr); ok {
			addr = a.AddrPort().Addr()
		} else if ap, err := netip.ParseAddrPort(p.Addr.String()); err == nil {
			addr = ap.Addr()
		}
		addr = addr.Unmap()
		local := false
		for _, n := range localProxies {
			if n.Contains(addr) {
				local = true
				break
			}
		}
		if addr.IsValid() && !local {
			return "address " + addr.String()
		}
	}
	return "identity " + identity
}

// fairQueue hands out a fixed number of slots fairly among peers: a peer holds at most
// perPeer slots at once (so one peer can never take them all), callers beyond that wait
// in a per-peer FIFO, and a freed slot goes to the waiting peers in turn (round robin), so
// a peer with one waiting caller is served after at most one slot release per other
// waiting peer, however many callers another peer has queued. Waiting is bounded per peer
// and in all; a caller over either bound is refused at once with ErrOverloaded.
type fairQueue struct {
	slots, perPeer         int
	maxWaiting, maxPerPeer int
	shed                   func(reason string)

	mu      sync.Mutex
	busy    int                   // slots held
	waiting int                   // callers waiting, all peers
	peers   map[string]*peerState // peers holding a slot or waiting
	turn    []*peerState          // peers with waiting callers that may take a slot, in turn order
}

type peerState struct {
	key     string
	held    int // slots held
	waiters []*waiter
	inTurn  bool
}

type waiter struct {
	ready   chan struct{} // closed when the slot is handed over
	granted bool          // set with ready closed, under fairQueue.mu
}

func newFairQueue(slots, perPeer, maxWaiting, maxPerPeer int, shed func(string)) *fairQueue {
	return &fairQueue{slots: slots, perPeer: perPeer, maxWaiting: maxWaiting, maxPerPeer: maxPerPeer,
		shed: shed, peers: map[string]*peerState{}}
}

// acquire waits for a slot for peer key until ctx ends. On success the caller must call
// release(key) once done with the slot.
func (q *fairQueue) acquire(ctx context.Context, key string) error {
	q.mu.Lock()
	p := q.peers[key]
	if p == nil {
		p = &peerState{key: key}
		q.peers[key] = p
	}
	if len(q.turn) == 0 && len(p.waiters) == 0 && q.busy < q.slots && p.held < q.perPeer {
		q.busy++
		p.held++
		q.mu.Unlock()
		return nil
	}
	var reason string
	switch {
	case len(p.waiters) >= q.maxPerPeer:
		reason = ShedPeerQueueFull
	case q.waiting >= q.maxWaiting:
		reason = ShedQueueFull
	}
	if reason != "" {
		n, all := len(p.waiters), q.waiting
		q.forgetLocked(p)
		q.mu.Unlock()
		q.shed(reason)
		if reason == ShedPeerQueueFull {
			return fmt.Errorf("%w: %d already waiting for the same caller, %s (limit %d); retry later", ErrOverloaded, n, trunc(key), q.maxPerPeer)
		}
		return fmt.Errorf("%w: %d already waiting in all (limit %d); retry later", ErrOverloaded, all, q.maxWaiting)
	}
	w := &waiter{ready: make(chan struct{})}
	p.waiters = append(p.waiters, w)
	q.waiting++
	if p.held < q.perPeer && !p.inTurn {
		p.inTurn = true
		q.turn = append(q.turn, p)
	}
	q.dispatchLocked()
	q.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if w.granted {
		// The slot arrived as the context ended: pass it on.
		q.releaseLocked(p)
	} else {
		for i, x := range p.waiters {
			if x == w {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				break
			}
		}
		q.waiting--
		if len(p.waiters) == 0 {
			q.dropTurnLocked(p)
		}
		q.forgetLocked(p)
	}
	q.mu.Unlock()
	return fmt.Errorf("waiting for a TokenReview slot: %w", ctx.Err())
}

// release returns a slot taken by acquire for peer key.
func (q *fairQueue) release(key string) {
	q.mu.Lock()
	q.releaseLocked(q.peers[key])
	q.mu.Unlock()
}

func (q *fairQueue) releaseLocked(p *peerState) {
	q.busy--
	p.held--
	if len(p.waiters) > 0 && !p.inTurn {
		// Below its share again: back in turn, behind the peers already waiting.
		p.inTurn = true
		q.turn = append(q.turn, p)
	}
	q.dispatchLocked()
	q.forgetLocked(p)
}

// dispatchLocked hands free slots to waiting peers in turn.
func (q *fairQueue) dispatchLocked() {
	for q.busy < q.slots && len(q.turn) > 0 {
		p := q.turn[0]
		q.turn[0] = nil
		q.turn = q.turn[1:]
		w := p.waiters[0]
		p.waiters[0] = nil
		p.waiters = p.waiters[1:]
		q.waiting--
		q.busy++
		p.held++
		w.granted = true
		close(w.ready)
		if len(p.waiters) > 0 && p.held < q.perPeer {
			q.turn = append(q.turn, p)
		} else {
			p.inTurn = false
		}
	}
}

func (q *fairQueue) dropTurnLocked(p *peerState) {
	if !p.inTurn {
		return
	}
	for i, x := range q.turn {
		if x == p {
			q.turn = append(q.turn[:i], q.turn[i+1:]...)
			break
		}
	}
	p.inTurn = false
}

// forgetLocked drops the state of a peer that holds and waits for nothing.
func (q *fairQueue) forgetLocked(p *peerState) {
	if p.held == 0 && len(p.waiters) == 0 {
		delete(q.peers, p.key)
	}
}

// stats returns the slots held and the callers waiting.
func (q *fairQueue) stats() (busy, waiting int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy, q.waiting
}
