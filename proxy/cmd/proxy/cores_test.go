package main

import "testing"

// TestCores: one core unless LINKERD2_PROXY_CORES asks for more, never more than available.
func TestCores(t *testing.T) {
	for _, c := range []struct{ configured, available, want int }{
		{0, 2, 1}, // unset: Linkerd's single-threaded default
		{0, 64, 1},
		{2, 8, 2}, // the injector's value from a CPU limit
		{4, 2, 2}, // capped at what is available
		{1, 1, 1},
		{0, 0, 1}, // never zero
	} {
		if got := cores(c.configured, c.available); got != c.want {
			t.Errorf("cores(%d, %d) = %d, want %d", c.configured, c.available, got, c.want)
		}
	}
}
