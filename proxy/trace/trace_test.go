package trace

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestExtract(t *testing.T) {
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name    string
		h       map[string]string
		ok      bool
		sampled bool
		format  Format
	}{
		{"w3c sampled", map[string]string{"traceparent": "00-" + tid + "-00f067aa0ba902b7-01"}, true, true, W3C},
		{"w3c flags 0b", map[string]string{"traceparent": "00-" + tid + "-00f067aa0ba902b7-0b"}, true, true, W3C},
		{"w3c unsampled", map[string]string{"traceparent": "00-" + tid + "-00f067aa0ba902b7-00"}, true, false, W3C},
		{"w3c future version with more fields", map[string]string{"traceparent": "01-" + tid + "-00f067aa0ba902b7-01-xyz"}, true, true, W3C},
		{"w3c v00 too long", map[string]string{"traceparent": "00-" + tid + "-00f067aa0ba902b7-01-xyz"}, false, false, 0},
		{"w3c version ff", map[string]string{"traceparent": "ff-" + tid + "-00f067aa0ba902b7-01"}, false, false, 0},
		{"w3c zero trace", map[string]string{"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, false, false, 0},
		{"w3c zero span", map[string]string{"traceparent": "00-" + tid + "-0000000000000000-01"}, false, false, 0},
		{"w3c bad hex", map[string]string{"traceparent": "00-" + tid + "-00f067aa0ba902bz-01"}, false, false, 0},
		{"b3 sampled", map[string]string{"X-B3-TraceId": tid, "X-B3-SpanId": "a2fb4a1d1a96d312", "X-B3-Sampled": "1"}, true, true, B3Multi},
		{"b3 64-bit trace, debug", map[string]string{"X-B3-TraceId": "a3ce929d0e0e4736", "X-B3-SpanId": "a2fb4a1d1a96d312", "X-B3-Flags": "1"}, true, true, B3Multi},
		{"b3 no decision", map[string]string{"X-B3-TraceId": tid, "X-B3-SpanId": "a2fb4a1d1a96d312"}, true, false, B3Multi},
		{"b3 no span", map[string]string{"X-B3-TraceId": tid}, false, false, 0},
		{"b3 single", map[string]string{"b3": tid + "-a2fb4a1d1a96d312-1-0020000000000001"}, true, true, B3Single},
		{"b3 single deny", map[string]string{"b3": "0"}, false, false, 0},
		{"invalid w3c falls back to b3", map[string]string{"traceparent": "garbage", "X-B3-TraceId": tid, "X-B3-SpanId": "a2fb4a1d1a96d312", "X-B3-Sampled": "true"}, true, true, B3Multi},
		{"none", nil, false, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.h {
				h.Set(k, v)
			}
			c, ok := Extract(h)
			if ok != tc.ok || c.Sampled != tc.sampled || c.Format != tc.format {
				t.Errorf("Extract = %+v, %v; want ok %v sampled %v format %v", c, ok, tc.ok, tc.sampled, tc.format)
			}
			// The fast path's check never misses a sampled context.
			anySampled := false
			for k, vv := range h {
				anySampled = anySampled || SampledField([]byte(k), []byte(vv[0]))
			}
			if c.Sampled && !anySampled {
				t.Errorf("SampledField misses the sampled context of %v", tc.h)
			}
		})
	}
}

// TestStartRewritesContext checks the next hop sees the proxy's span as parent, in the
// format the context came in.
func TestStartRewritesContext(t *testing.T) {
	exp := &Exporter{queue: make(chan *Span, 4)}
	tr := NewTracer(exp, "outbound")
	r := httptest.NewRequest("GET", "http://web.shop:8080/x?y=1", nil)
	r.Header.Set("X-B3-TraceId", "a3ce929d0e0e4736")
	r.Header.Set("X-B3-SpanId", "a2fb4a1d1a96d312")
	r.Header.Set("X-B3-Sampled", "1")
	a := tr.Start(r)
	if a == nil {
		t.Fatal("no span for a sampled request")
	}
	if got := r.Header.Get("X-B3-SpanId"); got != a.span.ID.String() {
		t.Errorf("X-B3-SpanId %q, want the span %s", got, a.span.ID)
	}
	if got := r.Header.Get("X-B3-ParentSpanId"); got != "a2fb4a1d1a96d312" {
		t.Errorf("X-B3-ParentSpanId %q, want the caller's span", got)
	}
	if a.span.Kind != Client || a.span.Name != "/x" {
		t.Errorf("span kind %v name %q", a.span.Kind, a.span.Name)
	}
	a.Responded(http.StatusNotFound)
	a.Finish()
	s := <-exp.queue
	if got := s.Attributes[len(s.Attributes)-1]; got != (Attribute{"http.response.status_code", "404"}) {
		t.Errorf("last attribute %v", got)
	}
}

// TestUntracedRequestsDoNotAllocate checks Start costs no allocation for requests it
// does not trace, with tracing on or off.
func TestUntracedRequestsDoNotAllocate(t *testing.T) {
	exp := &Exporter{queue: make(chan *Span, 1)}
	for name, tr := range map[string]*Tracer{"off": nil, "on": NewTracer(exp, "inbound")} {
		for hname, h := range map[string]http.Header{
			"none":      {"Accept": {"*/*"}},
			"unsampled": {"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}},
		} {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header = h
			if n := testing.AllocsPerRun(100, func() {
				if tr.Start(r) != nil {
					t.Fatal("span started")
				}
			}); n != 0 {
				t.Errorf("tracing %s, %s context: %v allocations per request", name, hname, n)
			}
		}
	}
	fields := [][2]string{{"Accept", "*/*"}, {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}}
	if n := testing.AllocsPerRun(100, func() {
		for _, f := range fields {
			if SampledField([]byte(f[0]), []byte(f[1])) {
				t.Fatal("sampled")
			}
		}
	}); n != 0 {
		t.Errorf("SampledField: %v allocations", n)
	}
}
