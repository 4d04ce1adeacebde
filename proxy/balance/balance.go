// Package balance picks an endpoint for each request (or opaque connection) with power of
// two choices over PeakEWMA load, as Linkerd does, and holds requests in a bounded queue
// with a failfast timeout while a backend has no endpoints.
//
// Picking is lock-free: the endpoint set is an immutable slice swapped atomically on
// discovery updates, and each endpoint keeps its load in atomics.
package balance

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults from Linkerd's balancer configuration.
const (
	DefaultRTT      = 30 * time.Millisecond
	DefaultDecay    = 10 * time.Second
	DefaultCapacity = 100
	DefaultFailfast = 3 * time.Second
)

// Errors returned by Pick. The HTTP layer maps ErrQueueFull and ErrUnavailable to 503 and
// ErrFailfast to 504.
var (
	// ErrQueueFull means the backend's queue of requests waiting for an endpoint is full.
	ErrQueueFull = errors.New("backend queue is full: load shed")
	// ErrFailfast means the request waited the whole failfast timeout without an endpoint.
	ErrFailfast = errors.New("no endpoints became available within the failfast timeout")
	// ErrUnavailable means the backend is in failfast: it has had no endpoints for longer
	// than the failfast timeout, and new requests are refused until one appears.
	ErrUnavailable = errors.New("backend is in failfast: no endpoints available")
)

// Endpoint is one backend address with its load estimate. Value is the caller's
// per-endpoint state (a connection pool, metric labels...).
type Endpoint[T any] struct {
	Addr  netip.AddrPort
	Value T

	pending   atomic.Int64
	ewmaNanos atomic.Uint64 // float64 bits; 0 means no sample yet
	stampNano atomic.Int64  // when ewmaNanos was last updated (since epoch)
	backoff   atomic.Int64  // unix nanos until which the endpoint is considered failing
}

// NewEndpoint returns an endpoint for addr carrying value.
func NewEndpoint[T any](addr netip.AddrPort, value T) *Endpoint[T] {
	return &Endpoint[T]{Addr: addr, Value: value}
}

// Pending returns the number of requests in flight on the endpoint.
func (e *Endpoint[T]) Pending() int64 { return e.pending.Load() }

// Start marks a request as in flight; call Done when it ends.
func (e *Endpoint[T]) Start() { e.pending.Add(1) }

// Done ends a request started with Start, feeding its round-trip time (to response
// headers, or to the connection being established for opaque traffic) into the
// endpoint's PeakEWMA estimate at time now. decay is the EWMA's time constant.
func (e *Endpoint[T]) Done(now time.Time, rtt, decay time.Duration) {
	e.pending.Add(-1)
	e.observe(now, rtt, decay)
}

func (e *Endpoint[T]) observe(now time.Time, rtt, decay time.Duration) {
	n := now.UnixNano()
	sample := float64(rtt)
	prevBits := e.ewmaNanos.Load()
	prev := math.Float64frombits(prevBits)
	var next float64
	switch {
	case prevBits == 0 || sample > prev:
		next = sample // peak: jump up at once
	default:
		elapsed := float64(n - e.stampNano.Load())
		w := math.Exp(-max(elapsed, 0) / float64(decay))
		next = prev*w + sample*(1-w)
	}
	if next <= 0 {
		next = 1
	}
	// Racing updates may drop one sample; the estimate stays sound.
	e.ewmaNanos.CompareAndSwap(prevBits, math.Float64bits(next))
	e.stampNano.Store(n)
}

// Failed marks the endpoint as failing (a connect error) until until; P2C avoids it while
// other endpoints are healthy.
func (e *Endpoint[T]) Failed(until time.Time) { e.backoff.Store(until.UnixNano()) }

// Recovered clears a failure mark.
func (e *Endpoint[T]) Recovered() {
	if e.backoff.Load() != 0 {
		e.backoff.Store(0)
	}
}

// load is PeakEWMA's cost at time now: the latency estimate, decayed toward zero for the
// time since its last update (so an idle endpoint is tried again), times the requests in
// flight plus one. An endpoint never measured starts at defaultRTT.
func (e *Endpoint[T]) load(now int64, defaultRTT float64, decay time.Duration) float64 {
	v := defaultRTT
	if b := e.ewmaNanos.Load(); b != 0 {
		v = math.Float64frombits(b)
		if elapsed := now - e.stampNano.Load(); elapsed > 0 {
			v *= math.Exp(-float64(elapsed) / float64(decay))
		}
	}
	return v * float64(e.pending.Load()+1)
}

func (e *Endpoint[T]) failing(now int64) bool {
	b := e.backoff.Load()
	return b != 0 && now < b
}

// Options configures a Balancer; zero fields take the defaults.
type Options struct {
	DefaultRTT time.Duration
	Decay      time.Duration
	Capacity   int
	Failfast   time.Duration
	// Rand returns uniformly random numbers; math/rand/v2's when nil. Tests may fix it.
	Rand func() uint64
	// Now is the clock; time.Now when nil. It must agree with the times given to Done.
	Now func() time.Time
}

// Balancer picks endpoints of one backend. It is safe for concurrent use.
type Balancer[T any] struct {
	defaultRTT float64
	decay      time.Duration
	capacity   int64
	failfast   time.Duration
	rand       func() uint64
	now        func() time.Time

	eps        atomic.Pointer[[]*Endpoint[T]]
	waiters    atomic.Int64
	inFailfast atomic.Bool

	mu      sync.Mutex
	changed chan struct{} // closed when the set becomes non-empty
}

// New returns a balancer with no endpoints.
func New[T any](opts Options) *Balancer[T] {
	b := &Balancer[T]{
		defaultRTT: float64(cmpOr(opts.DefaultRTT, DefaultRTT)),
		decay:      cmpOr(opts.Decay, DefaultDecay),
		capacity:   int64(cmpOr(opts.Capacity, DefaultCapacity)),
		failfast:   cmpOr(opts.Failfast, DefaultFailfast),
		rand:       opts.Rand,
		now:        opts.Now,
		changed:    make(chan struct{}),
	}
	if b.rand == nil {
		b.rand = rand.Uint64
	}
	if b.now == nil {
		b.now = time.Now
	}
	empty := []*Endpoint[T]{}
	b.eps.Store(&empty)
	return b
}

func cmpOr[V int | time.Duration](v, def V) V {
	if v > 0 {
		return v
	}
	return def
}

// Decay returns the EWMA time constant, for Endpoint.Done.
func (b *Balancer[T]) Decay() time.Duration { return b.decay }

// Endpoints returns the current endpoint set; callers must not modify it.
func (b *Balancer[T]) Endpoints() []*Endpoint[T] { return *b.eps.Load() }

// Set replaces the endpoint set. Endpoints are matched by pointer: callers keep the
// *Endpoint of an address across updates so that its load estimate survives.
func (b *Balancer[T]) Set(eps []*Endpoint[T]) {
	cp := append([]*Endpoint[T](nil), eps...)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.eps.Store(&cp)
	if len(cp) > 0 {
		b.inFailfast.Store(false)
		close(b.changed)
		b.changed = make(chan struct{})
	}
}

// Pick returns an endpoint for one request. With endpoints available it does not block
// or allocate. Otherwise the request waits in the queue until an endpoint appears, the
// failfast timeout passes (ErrFailfast), or ctx ends (ctx.Err()); a full queue gives
// ErrQueueFull and a backend already in failfast gives ErrUnavailable.
func (b *Balancer[T]) Pick(ctx context.Context) (*Endpoint[T], error) {
	if e := b.pick(); e != nil {
		return e, nil
	}
	return b.wait(ctx)
}

func (b *Balancer[T]) pick() *Endpoint[T] {
	eps := *b.eps.Load()
	switch len(eps) {
	case 0:
		return nil
	case 1:
		return eps[0]
	}
	r := b.rand()
	n := uint64(len(eps))
	i := r % n
	j := (r >> 32) % (n - 1)
	if j >= i {
		j++
	}
	a, c := eps[i], eps[j]
	now := b.now().UnixNano()
	af, cf := a.failing(now), c.failing(now)
	switch {
	case af && !cf:
		return c
	case cf && !af:
		return a
	case af && cf:
		// Both sampled endpoints are failing: look for any healthy one.
		for _, e := range eps {
			if !e.failing(now) {
				return e
			}
		}
	}
	if c.load(now, b.defaultRTT, b.decay) < a.load(now, b.defaultRTT, b.decay) {
		return c
	}
	return a
}

func (b *Balancer[T]) wait(ctx context.Context) (*Endpoint[T], error) {
	if b.inFailfast.Load() {
		return nil, ErrUnavailable
	}
	if b.waiters.Add(1) > b.capacity {
		b.waiters.Add(-1)
		return nil, ErrQueueFull
	}
	defer b.waiters.Add(-1)
	timer := time.NewTimer(b.failfast)
	defer timer.Stop()
	for {
		b.mu.Lock()
		ch := b.changed
		b.mu.Unlock()
		if e := b.pick(); e != nil {
			return e, nil
		}
		select {
		case <-ch:
		case <-timer.C:
			if e := b.pick(); e != nil {
				return e, nil
			}
			b.inFailfast.Store(true)
			return nil, ErrFailfast
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Queued returns the number of requests waiting for an endpoint.
func (b *Balancer[T]) Queued() int { return int(b.waiters.Load()) }

// EndpointStates counts the endpoints by state, for Linkerd's balancer_endpoints
// gauges: ready endpoints take requests; pending ones are in failure backoff (after a
// connection failure or failure accrual) and are avoided.
func (b *Balancer[T]) EndpointStates() (ready, pending int) {
	now := b.now().UnixNano()
	for _, e := range *b.eps.Load() {
		if e.failing(now) {
			pending++
		} else {
			ready++
		}
	}
	return ready, pending
}
