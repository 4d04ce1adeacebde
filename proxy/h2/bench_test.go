package h2

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPostSmallBody: a 100-byte request body and its echo over one lean HTTP/2
// connection (Transport to Server), the shape of a unary gRPC call between proxies.
func BenchmarkPostSmallBody(b *testing.B) {
	tr, base := start(b, echo())
	body := strings.Repeat("x", 100)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		req, _ := http.NewRequest("POST", base+"/p", strings.NewReader(body))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkPostSmallBodyConcurrent is BenchmarkPostSmallBody with 8 requests per
// processor under way at once, sharing the connection: how a busy hop between proxies
// is used.
func BenchmarkPostSmallBodyConcurrent(b *testing.B) {
	tr, base := start(b, echo())
	body := strings.Repeat("x", 100)
	b.ReportAllocs()
	b.SetParallelism(8)
	defer reportCPU(b)()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", base+"/p", strings.NewReader(body))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// reportCPU starts measuring the process's CPU time (user and system) and returns the
// function reporting it per operation as cpu-ns/op: a figure that other load on the
// machine changes far less than ns/op, which is wall time.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatalf("getrusage: %v", err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
	}
}
