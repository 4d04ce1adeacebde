// Package eventually is the test substrate's one way to wait for a condition: poll it, from
// every few milliseconds backing off to every 100 ms (or a six-hundredth of a longer
// deadline, so that slow checks against a cluster are not hammered), until it holds or the
// deadline passes,
// then fail the test naming what did not happen (and the last error, if the condition gives
// one). Tests never sleep to synchronise; they wait for the state they need with these.
//
// The default deadline, Timeout, is long because tests run on loaded two-core machines
// (CI runs everything at once); a condition that holds returns as soon as it is seen.
package eventually

import (
	"testing"
	"time"
)

// Timeout is how long True and NoError wait.
const Timeout = 60 * time.Second

// True waits until cond returns true, failing t with "timed out waiting for <what>".
func True(t testing.TB, what string, cond func() bool) {
	t.Helper()
	TrueWithin(t, Timeout, what, cond)
}

// TrueWithin is True with its own deadline.
func TrueWithin(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	NoErrorWithin(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// NoError waits until f returns nil, failing t with what and f's last error.
func NoError(t testing.TB, what string, f func() error) {
	t.Helper()
	NoErrorWithin(t, Timeout, what, f)
}

// NoErrorWithin is NoError with its own deadline.
func NoErrorWithin(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval, most := 2*time.Millisecond, max(100*time.Millisecond, timeout/600)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if err == errNotYet {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			}
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(interval) // the polling interval, not synchronisation
		interval = min(2*interval, most)
	}
}

type notYet struct{}

func (notYet) Error() string { return "condition not met" }

var errNotYet error = notYet{}
