package trace

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"

	"github.com/l5d-go/l5d/proxy/h1"
)

// TraceID and SpanID are the W3C/OpenTelemetry identifiers; zero is invalid.
type (
	TraceID [16]byte
	SpanID  [8]byte
)

// Format is the header format a request's context came in.
type Format uint8

// Formats of trace context, in the order they are looked for.
const (
	W3C      Format = iota + 1 // traceparent
	B3Multi                    // X-B3-TraceId, X-B3-SpanId, X-B3-Sampled / X-B3-Flags
	B3Single                   // b3: trace-span-sampled[-parent]
)

// Header names of the formats, canonical for http.Header.
const (
	headerTraceparent = "Traceparent"
	headerB3TraceID   = "X-B3-Traceid"
	headerB3SpanID    = "X-B3-Spanid"
	headerB3Parent    = "X-B3-Parentspanid"
	headerB3Sampled   = "X-B3-Sampled"
	headerB3Flags     = "X-B3-Flags"
	headerB3          = "B3"
)

// Context is a request's trace context: its trace, the caller's span (the parent of the
// proxy's), whether the trace is sampled, and the format it came in.
type Context struct {
	TraceID TraceID
	Parent  SpanID
	Sampled bool
	Format  Format
	// flags is the W3C trace-flags byte, kept when the header is rewritten.
	flags byte
}

// Extract reads h's trace context: traceparent first, then B3 (multi-header, then the
// single b3 header). ok is false when h carries no valid context.
func Extract(h http.Header) (c Context, ok bool) {
	if v := h[headerTraceparent]; len(v) > 0 {
		if c, ok = parseTraceparent(v[0]); ok {
			return c, true
		}
	}
	if v := h[headerB3TraceID]; len(v) > 0 {
		if c, ok = parseB3Multi(v[0], first(h[headerB3SpanID]), first(h[headerB3Sampled]), first(h[headerB3Flags])); ok {
			return c, true
		}
	}
	if v := h[headerB3]; len(v) > 0 {
		if c, ok = parseB3Single(v[0]); ok {
			return c, true
		}
	}
	return Context{}, false
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// parseTraceparent parses version-format-traceid-parentid-flags. Version 00 must be
// exactly that; later versions may append fields; ff is invalid.
func parseTraceparent(s string) (Context, bool) {
	var c Context
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return c, false
	}
	var ver [1]byte
	if !decodeHex(ver[:], s[0:2]) || ver[0] == 0xff || (ver[0] == 0 && len(s) != 55) || (len(s) > 55 && s[55] != '-') {
		return c, false
	}
	var flags [1]byte
	if !decodeHex(c.TraceID[:], s[3:35]) || !decodeHex(c.Parent[:], s[36:52]) || !decodeHex(flags[:], s[53:55]) {
		return c, false
	}
	if c.TraceID == (TraceID{}) || c.Parent == (SpanID{}) {
		return c, false
	}
	c.flags, c.Sampled, c.Format = flags[0], flags[0]&1 == 1, W3C
	return c, true
}

// parseB3Multi parses the B3 headers: a 64- or 128-bit trace id, the span id, and the
// sampling decision ("1" or "true" sampled, or the debug flag "1").
func parseB3Multi(traceID, spanID, sampled, flags string) (Context, bool) {
	var c Context
	if !decodeTraceID(&c.TraceID, traceID) || len(spanID) != 16 || !decodeHex(c.Parent[:], spanID) || c.Parent == (SpanID{}) {
		return c, false
	}
	c.Sampled = sampled == "1" || sampled == "true" || flags == "1"
	c.Format = B3Multi
	return c, true
}

// parseB3Single parses b3: traceid-spanid[-sampled[-parentspanid]]; a lone sampling
// decision ("0", "1", "d") carries no ids and is not a context.
func parseB3Single(s string) (Context, bool) {
	var c Context
	tid, rest, ok := cut(s)
	if !ok {
		return c, false
	}
	sid, rest, _ := cut(rest)
	sampled, _, _ := cut(rest)
	if !decodeTraceID(&c.TraceID, tid) || len(sid) != 16 || !decodeHex(c.Parent[:], sid) || c.Parent == (SpanID{}) {
		return c, false
	}
	c.Sampled = sampled == "1" || sampled == "d"
	c.Format = B3Single
	return c, true
}

func cut(s string) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// decodeTraceID decodes a 32- or 16-digit trace id (a 64-bit one fills the low half).
func decodeTraceID(dst *TraceID, s string) bool {
	switch len(s) {
	case 32:
		return decodeHex(dst[:], s) && *dst != TraceID{}
	case 16:
		*dst = TraceID{}
		return decodeHex(dst[8:], s) && *dst != TraceID{}
	}
	return false
}

// decodeHex decodes len(dst)*2 lower- or upper-case hex digits of s without allocating.
func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// newSpanID returns a random non-zero span id.
func newSpanID() SpanID {
	var id SpanID
	for id == (SpanID{}) {
		v := rand.Uint64()
		for i := range id {
			id[i] = byte(v >> (8 * i))
		}
	}
	return id
}

// inject makes span the parent the next hop sees, in c's format.
func (c Context) inject(h http.Header, span SpanID) {
	sid := hex.EncodeToString(span[:])
	switch c.Format {
	case W3C:
		h[headerTraceparent] = []string{"00-" + hex.EncodeToString(c.TraceID[:]) + "-" + sid + "-" + hex.EncodeToString([]byte{c.flags})}
	case B3Multi:
		h[headerB3SpanID] = []string{sid}
		h[headerB3Parent] = []string{hex.EncodeToString(c.Parent[:])}
	case B3Single:
		h[headerB3] = []string{c.b3TraceID() + "-" + sid + "-1-" + hex.EncodeToString(c.Parent[:])}
	}
}

// b3TraceID is the trace id as B3 writes it: 16 digits when it is a 64-bit one.
func (c Context) b3TraceID() string {
	if [8]byte(c.TraceID[:8]) == [8]byte{} {
		return hex.EncodeToString(c.TraceID[8:])
	}
	return hex.EncodeToString(c.TraceID[:])
}

// SampledField reports whether a request header field (name and value as read off the
// wire, any case) carries a sampled trace context, without allocating. The HTTP/1 fast
// path uses it to leave such requests to the handler that traces them.
func SampledField(name, value []byte) bool {
	switch len(name) {
	case len("traceparent"):
		if h1.EqualFold(name, "traceparent") {
			if len(value) < 55 {
				return false
			}
			flags, ok := unhex(value[54]) // the trace-flags' low digit holds the sampled bit
			return ok && flags&1 == 1
		}
	case len("x-b3-sampled"):
		if h1.EqualFold(name, "x-b3-sampled") {
			return string(value) == "1" || string(value) == "true"
		}
	case len("x-b3-flags"):
		if h1.EqualFold(name, "x-b3-flags") {
			return string(value) == "1"
		}
	case len("b3"):
		if h1.EqualFold(name, "b3") {
			return true // rare: let the handler parse it
		}
	}
	return false
}

// String is the id in lower-case hex, as the headers carry it.
func (id SpanID) String() string { return hex.EncodeToString(id[:]) }

// String is the id in lower-case hex, as the headers carry it.
func (id TraceID) String() string { return hex.EncodeToString(id[:]) }
