package certify

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc/peer"
)

// waitStats polls until q has busy slots held and waiting callers.
func waitStats(t *testing.T, q *fairQueue, busy, waiting int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, w := q.stats()
		if b == busy && w == waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("busy %d waiting %d, want %d and %d", b, w, busy, waiting)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

// TestFairQueueTurns: with one slot, a peer that queued one call is served before the
// second call of a peer that queued many; per-peer and total waiting bounds refuse at once.
func TestFairQueueTurns(t *testing.T) {
	var shed []string
	q := newFairQueue(1, 1, 4, 3, func(r string) { shed = append(shed, r) })
	ctx := t.Context()
	if err := q.acquire(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 8)
	enqueue := func(key, name string, waiting int) {
		go func() {
			if err := q.acquire(ctx, key); err != nil {
				got <- name + " failed: " + err.Error()
				return
			}
			got <- name
		}()
		waitStats(t, q, 1, waiting)
	}
	enqueue("a", "a2", 1)
	enqueue("a", "a3", 2)
	enqueue("a", "a4", 3)
	if err := q.acquire(ctx, "a"); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("fourth waiting call of a peer limited to 3: %v, want ErrOverloaded", err)
	}
	enqueue("b", "b1", 4)
	if err := q.acquire(ctx, "c"); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("fifth waiting call with 4 allowed in all: %v, want ErrOverloaded", err)
	}
	if len(shed) != 2 || shed[0] != ShedPeerQueueFull || shed[1] != ShedQueueFull {
		t.Fatalf("shed reasons %v", shed)
	}
	// a releases: b1 goes first, then a's queue in order.
	for _, step := range []struct{ release, want string }{{"a", "b1"}, {"b", "a2"}, {"a", "a3"}, {"a", "a4"}} {
		q.release(step.release)
		if g := <-got; g != step.want {
			t.Fatalf("after %s released, the slot went to %s, want %s", step.release, g, step.want)
		}
	}
	q.release("a")
	waitStats(t, q, 0, 0)
	if len(q.peers) != 0 || len(q.turn) != 0 {
		t.Fatalf("state left behind: %d peers, %d in turn", len(q.peers), len(q.turn))
	}
}

// TestFairQueuePerPeerSlotsAndCancel: a peer never holds more than its share of the
// slots, a second peer takes a free slot at once, and a waiting caller whose context ends
// leaves the queue.
func TestFairQueuePerPeerSlotsAndCancel(t *testing.T) {
	q := newFairQueue(3, 2, 10, 10, func(string) {})
	ctx := t.Context()
	for range 2 {
		if err := q.acquire(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- q.acquire(wctx, "a") }()
	waitStats(t, q, 2, 1) // a third slot is free, but a holds its share
	if err := q.acquire(ctx, "b"); err != nil {
		t.Fatalf("another peer with a free slot: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	waitStats(t, q, 3, 0)
	q.release("a")
	q.release("a")
	q.release("b")
	waitStats(t, q, 0, 0)
	if len(q.peers) != 0 || len(q.turn) != 0 {
		t.Fatalf("state left behind: %d peers, %d in turn", len(q.peers), len(q.turn))
	}
}

// TestCaller: a peer outside the local proxies is its address; a local proxy's calls
// (IPv4 or IPv6 loopback, also IPv4-mapped) and calls without a peer are the identity's.
func TestCaller(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{tcp("10.1.2.3:40000"), "address 10.1.2.3"},
		{tcp("[fd00::7]:40000"), "address fd00::7"},
		{tcp("[::ffff:10.1.2.3]:40000"), "address 10.1.2.3"},
		{tcp("127.0.0.1:40000"), "identity web"},
		{tcp("127.0.0.9:40000"), "identity web"},
		{tcp("[::1]:40000"), "identity web"},
		{tcp("[::ffff:127.0.0.1]:40000"), "identity web"},
		{&net.UnixAddr{Name: "@sock", Net: "unix"}, "identity web"},
		{nil, "identity web"},
	} {
		ctx := context.Background()
		if tc.addr != nil {
			ctx = peer.NewContext(ctx, &peer.Peer{Addr: tc.addr})
		}
		if got := Caller(ctx, "web", DefaultLocalProxies); got != tc.want {
			t.Errorf("Caller from %v = %q, want %q", tc.addr, got, tc.want)
		}
	}
	only := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	if got := Caller(peer.NewContext(context.Background(), &peer.Peer{Addr: tcp("127.0.0.2:1")}), "web", only); got != "address 127.0.0.2" {
		t.Errorf("Caller from 127.0.0.2 with only 127.0.0.1 a local proxy = %q", got)
	}
}
