// Package memreturn is the proxy's policy for giving freed memory back to the system.
//
// The Go runtime keeps memory its heap no longer uses and returns it only slowly, as it
// scavenges what exceeds its goal. A proxy that served a burst of connections which then
// went idle holds the burst's peak for minutes, although what the idle connections need
// is a small part of it. When such a burst has settled (rawsock.Poller reports it), a
// Limiter has the memory returned at once (debug.FreeOSMemory: a full collection, then a
// release of every free page), at most once per interval for the whole process, since the
// call stops the world for a full collection.
package memreturn

import (
	"runtime/debug"
	"sync"
	"time"
)

// Limiter runs its function at most once per interval. A Request inside the interval is
// not dropped: it is served by one run at the interval's end, however many were made.
// Its methods are safe for concurrent use.
type Limiter struct {
	interval time.Duration
	run      func()
	// now and after are time.Now and time.AfterFunc; tests replace them.
	now   func() time.Time
	after func(time.Duration, func())

	mu        sync.Mutex
	last      time.Time // when run last started (zero: never)
	scheduled bool      // a run is due at last+interval
	runs      int
}

// New returns a Limiter that runs run at most once per interval.
func New(interval time.Duration, run func()) *Limiter {
	return &Limiter{interval: interval, run: run, now: time.Now,
		after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
}

// FreeOSMemory is the proxy's Limiter: debug.FreeOSMemory at most once every 10 seconds.
func FreeOSMemory() *Limiter { return New(10*time.Second, debug.FreeOSMemory) }

// Request asks for a run: on a goroutine of its own at once when the last one started an
// interval ago or more, else once at the end of the interval (one run for all the
// requests made meanwhile).
func (l *Limiter) Request() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.scheduled {
		return
	}
	now := l.now()
	if wait := l.interval - now.Sub(l.last); !l.last.IsZero() && wait > 0 {
		l.scheduled = true
		l.after(wait, l.deferred)
		return
	}
	l.start(now)
}

// deferred is the run scheduled by a Request made inside the interval.
func (l *Limiter) deferred() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.scheduled = false
	l.start(l.now())
}

// start starts a run; l.mu is held.
func (l *Limiter) start(now time.Time) {
	l.last = now
	l.runs++
	go l.run()
}

// Runs returns how many runs were started.
func (l *Limiter) Runs() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runs
}
