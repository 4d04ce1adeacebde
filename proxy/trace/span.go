package trace

import (
	"net"
	"net/http"
	"strconv"
	"time"
)

// Kind is a span's OpenTelemetry kind: the inbound proxy serves (Server), the outbound
// one calls (Client), as in Linkerd.
type Kind uint8

// Span kinds, with OTLP's values.
const (
	Server Kind = 2
	Client Kind = 3
)

// Span is one request through the proxy, as recorded for export.
type Span struct {
	TraceID TraceID
	ID      SpanID
	Parent  SpanID
	Kind    Kind
	// Name is the request's path, as Linkerd names its spans.
	Name       string
	Start, End time.Time
	// Attributes are Linkerd's: http.request.method, url.scheme, url.path, url.query,
	// server.address, server.port, http.response.status_code and direction.
	Attributes []Attribute
}

// Attribute is a span attribute; Linkerd's are all strings.
type Attribute struct{ Key, Value string }

// Tracer starts the spans of one direction of the proxy and hands them to its Exporter.
// A nil *Tracer traces nothing.
type Tracer struct {
	exp       *Exporter
	kind      Kind
	direction string
}

// NewTracer returns the tracer of direction ("inbound": Server spans, "outbound":
// Client spans) exporting through exp.
func NewTracer(exp *Exporter, direction string) *Tracer {
	kind := Client
	if direction == "inbound" {
		kind = Server
	}
	return &Tracer{exp: exp, kind: kind, direction: direction}
}

// Enabled reports whether t traces (it is not nil).
func (t *Tracer) Enabled() bool { return t != nil }

// Start begins the span of r when r carries sampled trace context: r's headers then name
// the new span as the parent of the next hop. It returns nil (and leaves r alone, without
// allocating) when t is nil or r is not sampled.
func (t *Tracer) Start(r *http.Request) *Active {
	if t == nil {
		return nil
	}
	c, ok := Extract(r.Header)
	if !ok || !c.Sampled {
		return nil
	}
	a := &Active{t: t, span: Span{TraceID: c.TraceID, ID: newSpanID(), Parent: c.Parent, Kind: t.kind,
		Name: r.URL.Path, Start: time.Now()}}
	a.span.Attributes = requestAttributes(r, t.direction)
	c.inject(r.Header, a.span.ID)
	return a
}

// requestAttributes are Linkerd's request attributes of r.
func requestAttributes(r *http.Request, direction string) []Attribute {
	attrs := make([]Attribute, 0, 8)
	attrs = append(attrs, Attribute{"http.request.method", r.Method})
	scheme := r.URL.Scheme
	if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	attrs = append(attrs, Attribute{"url.scheme", scheme}, Attribute{"url.path", r.URL.Path})
	if r.URL.RawQuery != "" {
		attrs = append(attrs, Attribute{"url.query", r.URL.RawQuery})
	}
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		host = r.Host
	}
	if host != "" {
		if h, port, err := net.SplitHostPort(host); err == nil {
			attrs = append(attrs, Attribute{"server.address", h}, Attribute{"server.port", port})
		} else {
			attrs = append(attrs, Attribute{"server.address", host})
		}
	}
	return append(attrs, Attribute{"direction", direction})
}

// Active is a span being recorded.
type Active struct {
	t      *Tracer
	span   Span
	status int
}

// Responded records the response's status; the span ends at the first final status,
// when the response head leaves, as Linkerd's does.
func (a *Active) Responded(status int) {
	if a.status == 0 && status >= 200 {
		a.status, a.span.End = status, time.Now()
	}
}

// Finish hands the span to the exporter (ending it now if no response was recorded).
// It never blocks.
func (a *Active) Finish() {
	if a.span.End.IsZero() {
		a.span.End = time.Now()
	}
	if a.status != 0 {
		a.span.Attributes = append(a.span.Attributes, Attribute{"http.response.status_code", strconv.Itoa(a.status)})
	}
	a.t.exp.Send(&a.span)
}

// Writer returns w wrapped to record the response status on a.
func (a *Active) Writer(w http.ResponseWriter) http.ResponseWriter {
	return &writer{ResponseWriter: w, a: a}
}

// writer passes the response on, recording its status.
type writer struct {
	http.ResponseWriter
	a *Active
}

func (w *writer) WriteHeader(status int) {
	w.a.Responded(status)
	w.ResponseWriter.WriteHeader(status)
}

func (w *writer) Write(b []byte) (int, error) {
	w.a.Responded(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// Flush sends what was written so far, when the client connection can.
func (w *writer) Flush() {
	w.a.Responded(http.StatusOK)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the client's writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
