package memreturn

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
)

// clock is a manual clock with the timers a Limiter sets on it.
type clock struct {
	t       time.Time
	pending []func()
	waits   []time.Duration
}

func newLimiter(interval time.Duration) (*Limiter, *clock, *atomic.Int32) {
	c := &clock{t: time.Unix(1000, 0)}
	var ran atomic.Int32
	l := New(interval, func() { ran.Add(1) })
	l.now = func() time.Time { return c.t }
	l.after = func(d time.Duration, f func()) { c.waits = append(c.waits, d); c.pending = append(c.pending, f) }
	return l, c, &ran
}

// TestRequestsInsideTheIntervalShareOneDeferredRun: the first request runs at once; the
// requests that follow within the interval are served by one run at its end, and a
// request an interval after the last run runs at once again.
func TestRequestsInsideTheIntervalShareOneDeferredRun(t *testing.T) {
	l, c, ran := newLimiter(10 * time.Second)
	l.Request()
	eventually.True(t, "the first run", func() bool { return ran.Load() == 1 })

	c.t = c.t.Add(3 * time.Second)
	l.Request()
	l.Request()
	l.Request()
	if l.Runs() != 1 || len(c.pending) != 1 || c.waits[0] != 7*time.Second {
		t.Fatalf("three requests 3 s after a run: %d runs started, %d timers %v; want 1 run and one timer of 7s", l.Runs(), len(c.pending), c.waits)
	}
	c.t = c.t.Add(7 * time.Second)
	c.pending[0]()
	eventually.True(t, "the deferred run", func() bool { return ran.Load() == 2 })

	c.t = c.t.Add(10 * time.Second)
	l.Request()
	if l.Runs() != 3 || len(c.pending) != 1 {
		t.Fatalf("a request an interval after the last run: %d runs started, %d timers; want 3 and no new timer", l.Runs(), len(c.pending))
	}
	eventually.True(t, "the third run", func() bool { return ran.Load() == 3 })
}

// TestDeferredRunRestartsTheInterval: a request just after a deferred run waits a whole
// interval again.
func TestDeferredRunRestartsTheInterval(t *testing.T) {
	l, c, _ := newLimiter(time.Minute)
	l.Request()
	c.t = c.t.Add(time.Second)
	l.Request()
	c.t = c.t.Add(59 * time.Second)
	c.pending[0]()
	c.t = c.t.Add(time.Second)
	l.Request()
	if len(c.waits) != 2 || c.waits[1] != 59*time.Second || l.Runs() != 2 {
		t.Fatalf("timers %v, %d runs; want a second timer of 59s and 2 runs", c.waits, l.Runs())
	}
}
