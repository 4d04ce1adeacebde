package eventually

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records a Fatalf instead of stopping the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
	panic(r)
}

func run(f func(tb testing.TB)) (failed string) {
	r := &recorder{}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
		failed = r.failed
	}()
	f(r)
	return ""
}

func TestTrueReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	True(t, "the third call", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times", n)
	}
}

func TestFailuresNameWhatAndTheLastError(t *testing.T) {
	if msg := run(func(tb testing.TB) { TrueWithin(tb, 10*time.Millisecond, "never", func() bool { return false }) }); !strings.Contains(msg, "waiting for %s") || strings.Contains(msg, ": %v") {
		t.Errorf("TrueWithin failed with %q", msg)
	}
	if msg := run(func(tb testing.TB) {
		NoErrorWithin(tb, 10*time.Millisecond, "never", func() error { return errors.New("boom") })
	}); !strings.Contains(msg, ": %v") {
		t.Errorf("NoErrorWithin failed with %q, want the last error", msg)
	}
}
