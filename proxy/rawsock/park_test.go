package rawsock

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
)

// outcome records how the parkings of a connection ended.
type outcome struct{ ready, expired atomic.Int32 }

// owner is one parking of a connection; resumed is the Conn Ready gave it.
type owner struct {
	o       *outcome
	ended   chan string
	resumed *Conn
}

func (w *owner) Ready(c *Conn) { w.o.ready.Add(1); w.resumed = c; w.ended <- "ready" }
func (w *owner) Expire()       { w.o.expired.Add(1); w.ended <- "expired" }

func (o *outcome) park(t *testing.T, p *Poller, c *Conn, deadline time.Time) (*owner, bool) {
	t.Helper()
	w := &owner{o: o, ended: make(chan string, 2)}
	return w, p.Park(c, deadline, w)
}

// wait waits for the parking to end as want, and returns the Conn it resumed with
// (closed at the test's end), nil when it expired.
func wait(t *testing.T, w *owner, want string) *Conn {
	t.Helper()
	select {
	case got := <-w.ended:
		if got != want {
			t.Fatalf("the parking ended %s, want %s", got, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the parking never ended (want %s)", want)
	}
	if w.resumed != nil {
		t.Cleanup(func() { w.resumed.Close() })
	}
	return w.resumed
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	return newPollerReporting(t, nil)
}

func newPollerReporting(t *testing.T, afterBurst func()) *Poller {
	t.Helper()
	p, err := NewPoller(afterBurst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestParkedConnectionResumesOnInput: a parked connection is handed back once, as a new
// Conn over its socket (the one parked is closed), when input arrives, even input sent
// before it was parked, and reads it; parked again, it is handed
// back when the peer closes (the read then sees the end) or resets the connection.
func TestParkedConnectionResumesOnInput(t *testing.T) {
	p := newPoller(t)
	far := time.Now().Add(time.Hour)

	c, srv := pair(t)
	var o outcome
	ended, ok := o.park(t, p, c, far)
	if !ok {
		t.Fatal("Park refused a connection")
	}
	if p.Parked() != 1 {
		t.Fatalf("Parked() = %d, want 1", p.Parked())
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a parked Conn: %v, want it closed (only its socket kept)", err)
	}
	srv.Write([]byte("next"))
	c = wait(t, ended, "ready")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "next" {
		t.Fatalf("read after resuming: %q %v", buf, err)
	}

	// Input already there when it is parked.
	srv.Write([]byte("more"))
	ended, _ = o.park(t, p, c, far)
	c = wait(t, ended, "ready")
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "more" {
		t.Fatalf("read after resuming: %q %v", buf, err)
	}

	// The peer closes.
	ended, _ = o.park(t, p, c, far)
	srv.Close()
	c = wait(t, ended, "ready")
	if n, err := c.Read(buf); err != io.EOF {
		t.Fatalf("read after the peer closed: %d %v, want EOF", n, err)
	}

	// The peer resets.
	c2, srv2 := pair(t)
	ended, _ = o.park(t, p, c2, far)
	srv2.(*net.TCPConn).SetLinger(0)
	srv2.Close()
	c2 = wait(t, ended, "ready")
	if _, err := c2.Read(buf); err == nil {
		t.Fatal("read after the peer reset: no error")
	}
	if o.ready.Load() != 4 || o.expired.Load() != 0 || p.Parked() != 0 {
		t.Fatalf("ready %d, expired %d, still parked %d; want 4, 0, 0", o.ready.Load(), o.expired.Load(), p.Parked())
	}
}

// TestParkedConnectionExpires: a parked connection that gets no input expires once its
// deadline passes, before another parked later with a later deadline; Close expires
// what is still parked, and Park after Close refuses.
func TestParkedConnectionExpires(t *testing.T) {
	p := newPoller(t)
	c1, _ := pair(t)
	c2, _ := pair(t)
	var o1, o2 outcome
	late, _ := o2.park(t, p, c2, time.Now().Add(time.Hour))
	soon, _ := o1.park(t, p, c1, time.Now().Add(50*time.Millisecond))
	wait(t, soon, "expired")
	if o2.ready.Load()+o2.expired.Load() != 0 {
		t.Fatal("the connection with the later deadline ended too")
	}
	p.Close()
	wait(t, late, "expired")
	c3, _ := pair(t)
	var o3 outcome
	if _, ok := o3.park(t, p, c3, time.Now().Add(time.Hour)); ok {
		t.Fatal("Park after Close accepted a connection")
	}
	if o1.ready.Load() != 0 || o1.expired.Load() != 1 || o2.expired.Load() != 1 || o3.ready.Load()+o3.expired.Load() != 0 {
		t.Fatal("a parking ended more than once, or one refused ended")
	}
}

// TestParkingDeadlinesShareTicks: deadlines are rounded up to the expiry tick, so that
// connections parking at any moments share the poller's expiry scans (at most one a tick).
func TestParkingDeadlinesShareTicks(t *testing.T) {
	p := newPoller(t)
	var o outcome
	for i := range 20 {
		c, _ := pair(t)
		o.park(t, p, c, time.Now().Add(time.Hour+time.Duration(i)*time.Millisecond))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ticks := map[int64]bool{}
	for _, pk := range p.byFD {
		if pk.owner == nil {
			continue
		}
		if pk.deadline%expiryTick != 0 {
			t.Fatalf("deadline %d is not on a tick of %d", pk.deadline, expiryTick)
		}
		ticks[pk.deadline] = true
	}
	if len(ticks) > 2 {
		t.Fatalf("20 parkings within 20 ms have %d distinct deadlines, want at most 2", len(ticks))
	}
}

// TestBurstOfParkingsIsReported: once a burst of connections has parked and no more
// park for a while, the poller reports it, once (not again while nothing more parks),
// and the parked connections stay parked.
func TestBurstOfParkingsIsReported(t *testing.T) {
	var reports atomic.Int32
	p := newPollerReporting(t, func() { reports.Add(1) })
	var o outcome
	far := time.Now().Add(time.Hour)
	for range burstParkings {
		c, _ := pair(t)
		if _, ok := o.park(t, p, c, far); !ok {
			t.Fatal("Park refused a connection")
		}
	}
	eventually.True(t, "the poller to report the settled burst", func() bool { return reports.Load() > 0 })
	p.mu.Lock()
	burst := p.burst
	p.mu.Unlock()
	if burst != 0 || reports.Load() != 1 {
		t.Fatalf("after the report: %d parkings counted in the burst, %d reports; want 0 and 1", burst, reports.Load())
	}
	if p.Parked() != burstParkings || o.ready.Load()+o.expired.Load() != 0 {
		t.Fatalf("%d parked, %d ended; want %d and 0", p.Parked(), o.ready.Load()+o.expired.Load(), burstParkings)
	}
}
