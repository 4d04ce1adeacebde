package goldenmetrics

import (
	"bytes"
	"math"
	"os"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to the scrape parser and what follows it: no input may
// crash it, and accepted input yields finite, non-negative counts and sane figures.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"before.txt", "after.txt", "empty.txt"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("# TYPE response_latency_ms histogram\nresponse_latency_ms_bucket{direction=\"inbound\",le=\"1\"} 1\nresponse_latency_ms_bucket{direction=\"inbound\",le=\"+Inf\"} 2\nresponse_latency_ms_count{direction=\"inbound\"} 2\n"))
	f.Add([]byte("request_total{direction=\"inbound\",tls=\"true\"} NaN\n"))
	f.Add([]byte("request_total{direction=\"inbound\" 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, v := range append([]float64{c.Requests, c.TLSRequests, c.Success, c.Failure, c.Latency.Count}, c.Latency.Counts...) {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("accepted input gave count %v", v)
			}
		}
		if c.TLSRequests > c.Requests {
			t.Fatalf("TLS requests %v exceed requests %v", c.TLSRequests, c.Requests)
		}
		g := Compute(Delta(Counters{}, c), time.Second)
		for _, q := range []float64{g.P50, g.P95, g.P99} {
			if !math.IsNaN(q) && (q < 0 && len(c.Latency.Bounds) > 0 && c.Latency.Bounds[0] >= 0) {
				t.Fatalf("negative latency %v from bounds %v", q, c.Latency.Bounds)
			}
		}
		if !math.IsNaN(g.SuccessRate) && (g.SuccessRate < 0 || g.SuccessRate > 1) {
			t.Fatalf("success rate %v out of [0, 1]", g.SuccessRate)
		}
		if z := Compute(Delta(c, c), time.Second); z.Responses != 0 {
			t.Fatalf("no growth gave %v responses", z.Responses)
		}
	})
}
