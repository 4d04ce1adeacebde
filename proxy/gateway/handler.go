package gateway

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/h2"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// Handler serves the HTTP requests of gateway connections with the handler it wraps (a
// forward.Handler routing with the Gateway) and counts each one inbound, as Linkerd's
// gateway proxy does: request_total, response_total and response_latency_ms with
// direction="inbound", the client's tls and client_id, the gateway port's target and
// policy labels and the request's authority. A request the gateway refuses before it is
// authorized is counted without authority, under the connection's labels. The wrapped
// handler must not count its own errors (its ErrorMetrics nil): each request is counted
// once here.
type Handler struct {
	g    *Gateway
	next http.Handler
}

// Handler returns the gateway connections' HTTP handler around next; see Handler.
func (g *Gateway) Handler(next http.Handler) *Handler { return &Handler{g: g, next: next} }

// requestKey carries a request's *requestMetrics from Handler to Route.
type requestKey struct{}

// requestMetrics is where Route leaves the series of the request it authorized.
type requestMetrics struct{ m *metrics.HTTP }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rm := &requestMetrics{}
	r = r.WithContext(context.WithValue(r.Context(), requestKey{}, rm))
	sw := &statusWriter{ResponseWriter: w}
	aborted := true // until next returns: a panic (http.ErrAbortHandler) is a broken stream
	defer func() {
		m := rm.m
		if m == nil {
			if ci := forward.ConnInfoFrom(r.Context()); ci != nil {
				m = h.g.opts.Inbound.ErrorMetrics(ci)
			}
		}
		if m != nil {
			m.Request()
			m.Response(sw.code(), aborted || sw.failed(), time.Since(start))
		}
	}()
	h.next.ServeHTTP(sw, r)
	aborted = false
}

// ServeHTTP2 serves an HTTP/2 (prior knowledge) gateway connection, each stream through
// ServeHTTP, and closes conn when done (accept.FastHTTP2).
func (h *Handler) ServeHTTP2(ctx context.Context, conn net.Conn, ci *forward.ConnInfo) {
	srv := &h2.Server{Handler: h, Log: h.g.opts.Log}
	if err := srv.ServeConn(forward.WithConnInfo(ctx, ci), conn); err != nil {
		h.g.opts.Log.Debug("gateway HTTP/2 connection ended", "client", ci.Client, "error", err)
	}
}

// setRequestMetrics records m as the series of r's request, when Handler serves it.
func setRequestMetrics(r *http.Request, m *metrics.HTTP) {
	if rm, ok := r.Context().Value(requestKey{}).(*requestMetrics); ok {
		rm.m = m
	}
}

// statusWriter notes the status of the response written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher when the underlying writer does.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// AdoptHeader passes a header map on to an underlying HTTP/2 writer (see h2), which
// saves forward.Handler copying the response's header.
func (w *statusWriter) AdoptHeader(h http.Header) bool {
	a, ok := w.ResponseWriter.(interface{ AdoptHeader(http.Header) bool })
	return ok && a.AdoptHeader(h)
}

// Unwrap gives http.ResponseController the underlying writer (hijacking for upgrades).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// failed reports whether the response is a failure as the proxy classifies them: a 5xx
// status or a non-zero gRPC status in its headers or trailers.
func (w *statusWriter) failed() bool {
	if w.code() >= 500 {
		return true
	}
	hdr := w.Header()
	for _, k := range []string{"Grpc-Status", http.TrailerPrefix + "Grpc-Status"} {
		if vv := hdr[k]; len(vv) > 0 && vv[0] != "0" {
			return true
		}
	}
	return false
}
