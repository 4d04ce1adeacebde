package goldenmetrics

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func parseFile(t testing.TB, name string) Counters {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// same reports whether got equals want, NaN matching NaN, up to rounding.
func same(got, want float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

// TestGoldenFromTwoScrapes computes the figures from two fixed scrapes of a proxy
// (testdata/before.txt and after.txt; outbound traffic in them must not count).
func TestGoldenFromTwoScrapes(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name          string
		before, after string
		want          Golden
	}{
		{"traffic", "before.txt", "after.txt",
			// 250 responses (220 successes), 200 of 250 requests over TLS; latency buckets
			// grew by le10 100, le50 200, le100 245, +Inf 250.
			Golden{Responses: 250, SuccessRate: 0.88, RPS: 25, P50: 20, P95: 50 + 50*37.5/45, P99: 100, TLSShare: 0.8}},
		{"no traffic", "after.txt", "after.txt",
			Golden{Responses: 0, SuccessRate: nan, RPS: 0, P50: nan, P95: nan, P99: nan, TLSShare: nan}},
		{"proxy restarted", "after.txt", "before.txt",
			// Counters went down: the later scrape is all the growth.
			Golden{Responses: 120, SuccessRate: 110.0 / 120, RPS: 12, P50: 10 * 60.0 / 70, P95: 50 + 50*9.0/15, P99: 50 + 50*13.8/15, TLSShare: 100.0 / 120}},
		{"first scrape empty", "empty.txt", "after.txt",
			Golden{Responses: 370, SuccessRate: 330.0 / 370, RPS: 37, P50: 10 + 40*(185.0-170)/135, P95: 50 + 50*(351.5-305)/60, P99: 100, TLSShare: 300.0 / 370}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := Compute(Delta(parseFile(t, tc.before), parseFile(t, tc.after)), 10*time.Second)
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"responses", g.Responses, tc.want.Responses}, {"success rate", g.SuccessRate, tc.want.SuccessRate},
				{"rps", g.RPS, tc.want.RPS}, {"p50", g.P50, tc.want.P50}, {"p95", g.P95, tc.want.P95},
				{"p99", g.P99, tc.want.P99}, {"tls share", g.TLSShare, tc.want.TLSShare},
			} {
				if !same(f.got, f.want) {
					t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
				}
			}
		})
	}
}

func TestDeploymentSumsItsPods(t *testing.T) {
	before, after := parseFile(t, "before.txt"), parseFile(t, "after.txt")
	d := Delta(before, after)
	g := Compute(Add(d, d), 10*time.Second)
	// Two identical pods double the rate and keep the shares and percentiles.
	if g.RPS != 50 || !same(g.SuccessRate, 0.88) || !same(g.P50, 20) || !same(g.TLSShare, 0.8) {
		t.Errorf("two pods: %+v, want rps 50, success 0.88, p50 20, tls 0.8", g)
	}
}

func TestQuantileLikePrometheus(t *testing.T) {
	h := Histogram{Bounds: []float64{1, 2, 5, 10}, Counts: []float64{10, 10, 30, 40}, Count: 50}
	for _, tc := range []struct{ q, want float64 }{
		{0, 0}, {0.1, 0.5}, {0.2, 1}, {0.3, 2 + 3*5.0/20}, {0.6, 5},
		{0.8, 10}, {0.81, 10}, {1, 10}, {-1, math.Inf(-1)}, {2, math.Inf(1)},
	} {
		if got := Quantile(tc.q, h); !same(got, tc.want) && got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := Quantile(0.5, Histogram{}); !math.IsNaN(got) {
		t.Errorf("Quantile of an empty histogram = %v, want NaN", got)
	}
}

func TestParseRejectsBadInput(t *testing.T) {
	for name, text := range map[string]string{
		"not exposition":     "<html>proxy not ready</html>\n",
		"negative count":     `request_total{direction="inbound"} -3` + "\n",
		"unknown class":      `response_total{direction="inbound",classification="maybe"} 3` + "\n",
		"wrong type":         "# TYPE request_total histogram\n" + `request_total_bucket{direction="inbound",le="1"} 1` + "\n" + `request_total_count{direction="inbound"} 1` + "\n",
		"buckets decreasing": "# TYPE response_latency_ms histogram\n" + `response_latency_ms_bucket{direction="inbound",le="1"} 5` + "\n" + `response_latency_ms_bucket{direction="inbound",le="2"} 3` + "\n" + `response_latency_ms_bucket{direction="inbound",le="+Inf"} 5` + "\n",
		"overflowing sum":    `request_total{direction="inbound",a="1"} 1e308` + "\n" + `request_total{direction="inbound",a="2"} 1e308` + "\n",
	} {
		if _, err := Parse(strings.NewReader(text)); err == nil {
			t.Errorf("%s: Parse succeeded, want an error", name)
		} else if !strings.Contains(err.Error(), "proxy metrics") {
			t.Errorf("%s: error %q does not say what was being parsed", name, err)
		}
	}
}

func TestTable(t *testing.T) {
	d := Delta(parseFile(t, "before.txt"), parseFile(t, "after.txt"))
	rows := []Row{
		{Name: "catalog", Pods: 1, Meshed: 1, Golden: Compute(Counters{}, 10*time.Second)},
		{Name: "web", Pods: 2, Meshed: 2, Golden: Compute(d, 10*time.Second)},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NAME      MESHED   SUCCESS   RPS       LATENCY_P50   LATENCY_P95   LATENCY_P99   TLS\n" +
		"catalog   1/1      -         -         -             -             -             -\n" +
		"web       2/2      88.00%    25.0rps   20ms          92ms          100ms         80.00%\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}
