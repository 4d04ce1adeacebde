package app

import (
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

var body100 = strings.Repeat("x", 100)

func benchApp(b testing.TB) netip.AddrPort {
	addr, _ := serveHTTP(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, body100)
	}))
	return addr
}

func runRequests(b *testing.B, c *http.Client) {
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get("http://bench.example/")
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkDirectHTTP1 is the baseline: client -> app, HTTP/1.1 keep-alive, 100-byte
// responses. Subtract its ns/op and allocs/op from BenchmarkChainHTTP1 for the two proxies'
// cost (both run in this process).
func BenchmarkDirectHTTP1(b *testing.B) {
	app := benchApp(b)
	runRequests(b, clientTo(app, false))
}

// BenchmarkChainHTTP1: client -> outbound proxy -> inbound proxy -> app on loopback.
func BenchmarkChainHTTP1(b *testing.B) {
	app := benchApp(b)
	ch := newChain(b, app, nil)
	runRequests(b, clientTo(ch.entry, false))
}
