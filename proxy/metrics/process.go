package metrics

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"time"
)

// writeProcess writes the standard process_* metrics Prometheus users expect from any
// target, read from /proc/self/stat on Linux.
func writeProcess(e *expo, start time.Time) {
	e.header("process_start_time_seconds", "gauge", "Time that the process started (in seconds since the UNIX epoch)")
	e.sample("process_start_time_seconds", "", "", uint64(start.Unix()))
	if utime, stime, rss, ok := procStat(); ok {
		e.header("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
		e.sampleFloat("process_cpu_seconds_total", "", "", float64(utime+stime)/100)
		e.header("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
		e.sample("process_resident_memory_bytes", "", "", rss*uint64(os.Getpagesize()))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	e.header("go_memstats_heap_inuse_bytes", "gauge", "Number of heap bytes that are in use.")
	e.sample("go_memstats_heap_inuse_bytes", "", "", ms.HeapInuse)
	e.header("go_goroutines", "gauge", "Number of goroutines that currently exist.")
	e.sample("go_goroutines", "", "", uint64(runtime.NumGoroutine()))
}

// procStat returns utime and stime (clock ticks, assumed 100 per second) and the resident
// set in pages from /proc/self/stat.
func procStat() (utime, stime, rss uint64, ok bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	// Fields after the command name, which is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime 15, rss 24.
	if len(f) < 22 {
		return 0, 0, 0, false
	}
	u, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	s, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	r, err3 := strconv.ParseUint(string(f[21]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, 0, false
	}
	return u, s, r, true
}
