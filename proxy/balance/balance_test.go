package balance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
)

func endpoints(n int) []*Endpoint[string] {
	var eps []*Endpoint[string]
	for i := range n {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80)
		eps = append(eps, NewEndpoint(addr, fmt.Sprint("ep", i)))
	}
	return eps
}

func seeded() func() uint64 { return rand.New(rand.NewPCG(1, 2)).Uint64 }

// TestSlowEndpointGetsLessTraffic drives the balancer with a simulated clock: each pick
// completes with its endpoint's latency; the slow endpoint must end up with a small share.
func TestSlowEndpointGetsLessTraffic(t *testing.T) {
	now := time.Unix(1000, 0)
	b := New[string](Options{Rand: seeded(), Now: func() time.Time { return now }})
	eps := endpoints(3)
	b.Set(eps)
	latency := map[*Endpoint[string]]time.Duration{eps[0]: 5 * time.Millisecond, eps[1]: 5 * time.Millisecond, eps[2]: 100 * time.Millisecond}
	counts := map[*Endpoint[string]]int{}
	const n = 3000
	for range n {
		e, err := b.Pick(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		counts[e]++
		e.Start()
		now = now.Add(time.Millisecond)
		e.Done(now, latency[e], b.Decay())
	}
	if share := float64(counts[eps[2]]) / n; share > 0.10 {
		t.Errorf("slow endpoint got %.0f%% of %d requests; want well under a third", share*100, n)
	}
	if counts[eps[0]] < n/4 || counts[eps[1]] < n/4 {
		t.Errorf("fast endpoints unevenly loaded: %d and %d", counts[eps[0]], counts[eps[1]])
	}
}

// TestBusyEndpointGetsLessTraffic: with equal latency, an endpoint with many requests in
// flight is avoided.
// TestIdleEndpointIsRetried: an endpoint whose estimate is high but old decays back into
// use, as PeakEWMA's estimate decays toward zero while it is not updated.
func TestIdleEndpointIsRetried(t *testing.T) {
	now := time.Unix(1000, 0)
	b := New[string](Options{Rand: seeded(), Now: func() time.Time { return now }})
	eps := endpoints(2)
	b.Set(eps)
	eps[0].Start()
	eps[0].Done(now, time.Millisecond, b.Decay())
	eps[1].Start()
	eps[1].Done(now, time.Second, b.Decay()) // one very slow response
	if e, _ := b.Pick(context.Background()); e != eps[0] {
		t.Fatal("slow endpoint picked right after its slow response")
	}
	// eps[0] keeps being used at 1ms; eps[1] is left alone and its estimate decays.
	picked := false
	for range 120 {
		now = now.Add(time.Second)
		eps[0].Start()
		eps[0].Done(now, time.Millisecond, b.Decay())
		if e, _ := b.Pick(context.Background()); e == eps[1] {
			picked = true
			break
		}
	}
	if !picked {
		t.Error("an endpoint with one old slow sample was never retried within two minutes")
	}
}

func TestBusyEndpointGetsLessTraffic(t *testing.T) {
	b := New[string](Options{Rand: seeded()})
	eps := endpoints(2)
	b.Set(eps)
	for range 50 {
		eps[0].Start()
	}
	busy := 0
	for range 1000 {
		e, _ := b.Pick(context.Background())
		if e == eps[0] {
			busy++
		}
	}
	if busy != 0 {
		t.Errorf("endpoint with 50 requests in flight picked %d of 1000 times over an idle one", busy)
	}
}

func TestFailingEndpointAvoided(t *testing.T) {
	b := New[string](Options{Rand: seeded()})
	eps := endpoints(3)
	b.Set(eps)
	eps[1].Failed(time.Now().Add(time.Hour))
	for range 1000 {
		if e, _ := b.Pick(context.Background()); e == eps[1] {
			t.Fatal("picked an endpoint marked failing while others are healthy")
		}
	}
	eps[1].Recovered()
	seen := false
	for range 1000 {
		if e, _ := b.Pick(context.Background()); e == eps[1] {
			seen = true
		}
	}
	if !seen {
		t.Error("recovered endpoint never picked")
	}
}

func TestQueuedRequestGetsEndpointWhenOneAppears(t *testing.T) {
	b := New[string](Options{Failfast: time.Minute})
	got := make(chan *Endpoint[string], 1)
	go func() {
		e, err := b.Pick(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- e
	}()
	eventually.True(t, "the queue to fill", func() bool { return b.Queued() == 1 })
	eps := endpoints(1)
	b.Set(eps)
	if e := <-got; e != eps[0] {
		t.Fatalf("got %v", e)
	}
}

func TestQueueFullSheds(t *testing.T) {
	b := New[string](Options{Capacity: 2, Failfast: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := b.Pick(ctx); errs <- err }()
	}
	eventually.True(t, "the queue to fill", func() bool { return b.Queued() == 2 })
	if _, err := b.Pick(ctx); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third request: %v, want ErrQueueFull", err)
	}
	cancel()
	for range 2 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("queued request after cancel: %v", err)
		}
	}
}

func TestFailfastThenUnavailableUntilEndpoints(t *testing.T) {
	b := New[string](Options{Failfast: 20 * time.Millisecond})
	if _, err := b.Pick(context.Background()); !errors.Is(err, ErrFailfast) {
		t.Fatalf("first request: %v, want ErrFailfast", err)
	}
	if _, err := b.Pick(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("request during failfast: %v, want ErrUnavailable", err)
	}
	eps := endpoints(1)
	b.Set(eps)
	if e, err := b.Pick(context.Background()); err != nil || e != eps[0] {
		t.Fatalf("after endpoints arrive: %v %v", e, err)
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	b := New[string](Options{})
	b.Set(endpoints(5))
	n := testing.AllocsPerRun(1000, func() {
		e, _ := b.Pick(context.Background())
		e.Start()
		e.Done(time.Now(), time.Millisecond, b.Decay())
	})
	if n != 0 {
		t.Errorf("Pick allocates %v times", n)
	}
}

func BenchmarkPick(b *testing.B) {
	bal := New[string](Options{})
	bal.Set(endpoints(10))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e, _ := bal.Pick(context.Background())
			e.Start()
			e.Done(time.Now(), time.Millisecond, bal.Decay())
		}
	})
}
