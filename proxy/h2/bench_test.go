package h2

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/proxy/internal/benchcpu"
)

// BenchmarkPostSmallBody: a 100-byte request body and its echo over one lean HTTP/2
// connection (Transport to Server), the shape of a unary gRPC call between proxies.
func BenchmarkPostSmallBody(b *testing.B) {
	tr, base := start(b, echo())
	body := strings.Repeat("x", 100)
	b.ReportAllocs()
	defer benchcpu.Start(b)()
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
	defer benchcpu.Start(b)()
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

// BenchmarkGet8KiB: a GET answered with 8 KiB written in 1 KiB pieces (a relayed body),
// over one lean HTTP/2 connection.
func BenchmarkGet8KiB(b *testing.B) {
	body := strings.Repeat("y", 8<<10)
	tr, base := start(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(body); i += 1 << 10 {
			io.WriteString(w, body[i:i+1<<10])
		}
	}))
	b.ReportAllocs()
	defer benchcpu.Start(b)()
	for b.Loop() {
		req, _ := http.NewRequest("GET", base+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
