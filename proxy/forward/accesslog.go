package forward

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"time"

	"github.com/l5d-go/l5d/proxy/accesslog"
)

// serveLogged serves r as ServeHTTP does and hands Handler.AccessLog an entry for it
// once the handler returns (also when it aborts the response). The entry is read from the
// request before it is forwarded, which changes its header fields and URL.
func (h *Handler) serveLogged(w http.ResponseWriter, r *http.Request) {
	lw := &loggedWriter{ResponseWriter: w, logger: h.AccessLog, entry: accesslog.Entry{
		Start: time.Now(), Method: r.Method, URI: r.RequestURI, Version: r.Proto, Host: r.Host,
		UserAgent: r.Header.Get("User-Agent"), RequestBytes: r.Header.Get("Content-Length"),
		TraceID: traceID(r.Header),
	}}
	if r.ProtoMajor == 2 {
		scheme := "http://"
		if r.TLS != nil {
			scheme = "https://"
		}
		lw.entry.URI = scheme + r.Host + r.RequestURI
	}
	if ci := ConnInfoFrom(r.Context()); ci != nil {
		lw.entry.Client, lw.entry.ClientID = ci.Client, ci.ClientID
	}
	r = r.WithContext(context.WithValue(r.Context(), upstreamWaitKey{}, &lw.upstream))
	defer func() {
		if !lw.logged {
			lw.log()
		}
	}()
	if h.Tap.Active() {
		h.serveTapped(lw, r)
		return
	}
	h.serve(lw, r, nil)
}

// upstreamWaitKey is the context key of the time a logged request waited for its
// response headers from the application or endpoint (all attempts).
type upstreamWaitKey struct{}

// addUpstreamWait adds d to the upstream wait of the logged request of ctx, if any. It is
// only called with Handler.AccessLog set; the request's goroutine is the only writer.
func addUpstreamWait(ctx context.Context, d time.Duration) {
	if w, _ := ctx.Value(upstreamWaitKey{}).(*time.Duration); w != nil {
		*w += d
	}
}

// traceID is the request's trace identifier as Linkerd's access log takes it:
// x-b3-traceid, else x-request-id, else x-amzn-trace-id.
func traceID(hdr http.Header) string {
	for _, name := range [...]string{"X-B3-Traceid", "X-Request-Id", "X-Amzn-Trace-Id"} {
		if v := hdr.Get(name); v != "" {
			return v
		}
	}
	return ""
}

// loggedWriter passes a response on while noting its status, Content-Length and when
// its headers were written.
type loggedWriter struct {
	http.ResponseWriter
	entry     accesslog.Entry
	responded bool
	// upstream is how long the request waited for response headers from upstream.
	upstream time.Duration
	// logged is set once the entry is handed to logger.
	logged bool
	logger *accesslog.Logger
}

// log completes the entry and hands it to the log.
func (w *loggedWriter) log() {
	if !w.responded {
		w.entry.Total = time.Since(w.entry.Start)
	}
	w.entry.Processing = max(0, w.entry.Total-w.upstream)
	w.logged = true
	w.logger.Log(&w.entry)
}

// Hijack takes the client connection over for a protocol switch: the handler only does
// so once the application agreed to switch, so the request is logged at once, with
// status 101, rather than when the upgraded connection ends.
func (w *loggedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && !w.responded {
		w.responded, w.entry.Status, w.entry.Total = true, http.StatusSwitchingProtocols, time.Since(w.entry.Start)
		w.log()
	}
	return c, brw, err
}

func (w *loggedWriter) WriteHeader(status int) {
	if !w.responded && status >= 200 {
		w.responded = true
		w.entry.Status = status
		w.entry.ResponseBytes = w.ResponseWriter.Header().Get("Content-Length")
		w.entry.Total = time.Since(w.entry.Start)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *loggedWriter) Write(b []byte) (int, error) {
	if !w.responded {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends what was written so far, when the client connection can.
func (w *loggedWriter) Flush() {
	if !w.responded {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the client's writer.
func (w *loggedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
