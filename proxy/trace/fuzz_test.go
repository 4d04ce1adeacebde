package trace

import (
	"net/http"
	"testing"
)

// FuzzExtract: trace context headers are what any client sends the proxy. No value may
// crash Extract, and an accepted context has a trace id and a parent span id, with its
// Format naming the header it came from.
func FuzzExtract(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", "", "")
	f.Add("", "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1", "1")
	f.Add("", "", "", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "", "", "d")
	f.Fuzz(func(t *testing.T, traceparent, b3TraceID, b3SpanID, b3 string) {
		h := http.Header{}
		if traceparent != "" {
			h.Set(headerTraceparent, traceparent)
		}
		if b3TraceID != "" {
			h.Set(headerB3TraceID, b3TraceID)
			h.Set(headerB3SpanID, b3SpanID)
		}
		if b3 != "" {
			h.Set(headerB3, b3)
		}
		c, ok := Extract(h)
		if !ok {
			return
		}
		if c.TraceID == (TraceID{}) || c.Parent == (SpanID{}) {
			t.Fatalf("accepted a context without ids: %+v from %q", c, h)
		}
		switch c.Format {
		case W3C, B3Multi, B3Single:
		default:
			t.Fatalf("accepted context with format %v", c.Format)
		}
	})
}
