// Package benchcpu reports a benchmark's CPU time per operation: the user and system
// time of the whole process (every goroutine: clients, proxies, applications) divided by
// b.N, as the cpu-ns/op metric. Other load on the machine changes it far less than
// ns/op, which is wall time, so it is the figure to compare builds by on a busy machine.
package benchcpu

import (
	"syscall"
	"testing"
	"time"
)

// Start begins measuring and returns the function that stops b's timer and reports the
// CPU time spent since, per operation; call it when the measured loop is done (defer).
func Start(b *testing.B) (report func()) {
	start := process(b)
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(process(b)-start)/float64(b.N), "cpu-ns/op")
	}
}

// process returns the CPU time this process has used so far.
func process(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
