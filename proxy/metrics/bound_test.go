package metrics

import (
	"strings"
	"testing"
	"time"
)

// lines returns the lines of text that start with prefix.
func lines(text, prefix string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TestSeriesAreBounded: each family keeps at most MaxSeries label sets (the rest is
// recorded under the overflow series), and series idle for RetainIdle are dropped, except
// TCP series with open connections; a handle whose series was dropped brings it back, with
// its counts, at its next event, merged into a series resolved again meanwhile.
func TestSeriesAreBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	r := New()
	r.now = func() time.Time { return now }
	r.MaxSeries, r.RetainIdle = 3, time.Minute

	var tcps []*TCP
	for _, sni := range []string{"a", "b", "c", "d", "e"} {
		tc := r.TCP(Labels("sni", sni))
		tc.Open()
		tc.Read(10)
		tcps = append(tcps, tc)
	}
	text := scrape(t, r)
	if got := lines(text, "tcp_open_total{"); len(got) != 4 || !strings.Contains(text, `tcp_open_total{overflow="true"} 2`) {
		t.Fatalf("want 3 series and an overflow series counting 2 connections:\n%s", strings.Join(got, "\n"))
	}
	for i, c := range []string{"a", "b", "c", "d"} {
		r.Counter("x_total", "X.", Labels("k", c)).Add(uint64(i + 1))
	}
	if text := scrape(t, r); !strings.Contains(text, `x_total{overflow="true"} 4`) || len(lines(text, "x_total{")) != 4 {
		t.Fatalf("counters are not bounded:\n%s", strings.Join(lines(text, "x_total"), "\n"))
	}

	// a and b close; c stays open. A minute later a and b are dropped, not c.
	tcps[0].Close()
	tcps[1].Close()
	scrape(t, r)
	now = now.Add(time.Minute)
	text = scrape(t, r)
	if got := lines(text, "tcp_open_total{"); len(got) != 2 || !strings.Contains(text, `tcp_open_total{sni="c"} 1`) {
		t.Fatalf("after a minute idle, want c and the overflow series:\n%s", strings.Join(got, "\n"))
	}
	// A handle kept by its user records again: the series comes back with its counts.
	tcps[0].Open()
	if text := scrape(t, r); !strings.Contains(text, `tcp_open_total{sni="a"} 2`) || !strings.Contains(text, `tcp_open_connections{sni="a"} 1`) {
		t.Fatalf("the revived series:\n%s", strings.Join(lines(text, "tcp_open"), "\n"))
	}
	// b's series was resolved again before the old handle records: the counts merge.
	b := r.TCP(Labels("sni", "b"))
	b.Open()
	tcps[1].Read(5)
	if text := scrape(t, r); !strings.Contains(text, `tcp_open_total{sni="b"} 2`) || !strings.Contains(text, `tcp_read_bytes_total{sni="b"} 15`) {
		t.Fatalf("the merged series:\n%s", strings.Join(lines(text, "tcp_"), "\n"))
	}

	// HTTP: the same for request series.
	h := r.HTTP(Labels("authority", "web"))
	h.Request()
	h.Response(200, false, time.Millisecond)
	scrape(t, r)
	now = now.Add(time.Minute)
	if text := scrape(t, r); strings.Contains(text, `authority="web"`) {
		t.Fatalf("an idle HTTP series was kept:\n%s", strings.Join(lines(text, "request_total"), "\n"))
	}
	h.Request()
	h.Response(200, false, time.Millisecond)
	if text := scrape(t, r); !strings.Contains(text, `request_total{authority="web"} 2`) ||
		!strings.Contains(text, `response_total{authority="web",status_code="200",classification="success"} 2`) {
		t.Fatalf("the revived HTTP series:\n%s", strings.Join(lines(text, "re"), "\n"))
	}
}
