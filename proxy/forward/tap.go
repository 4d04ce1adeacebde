package forward

import (
	"net/http"
	"strings"

	"github.com/l5d-go/l5d/proxy/tap"
)

// serveTapped serves r as serve does, with the tap sessions matching it observing it
// (Handler.Tap is active).
func (h *Handler) serveTapped(w http.ResponseWriter, r *http.Request) {
	ci := ConnInfoFrom(r.Context())
	t := h.Tap.Start(tapRequest(r, ci), r.Header)
	if t == nil {
		h.serve(w, r)
		return
	}
	tw := &tapWriter{ResponseWriter: w, t: t}
	ended := false
	defer func() {
		if !ended {
			t.End(nil, true) // the handler aborted the stream
		}
	}()
	h.serve(tw, r)
	if !tw.started {
		tw.WriteHeader(http.StatusOK)
	}
	t.End(tw.trailers(), false)
	ended = true
}

// tapRequest describes r on the connection ci for tap matching.
func tapRequest(r *http.Request, ci *ConnInfo) *tap.Request {
	tr := &tap.Request{Method: r.Method, Scheme: "http", Authority: r.Host, Path: r.URL.Path}
	if r.TLS != nil {
		tr.Scheme = "https"
	}
	if ci == nil {
		return tr
	}
	tr.Inbound, tr.Source, tr.Destination = ci.inbound(), ci.Client, ci.OrigDst
	switch {
	case !tr.Inbound:
		tr.SourceLabels = map[string]string{"tls": "loopback"}
	case ci.ClientID != "":
		tr.SourceLabels = map[string]string{"tls": "true", "client_id": ci.ClientID}
	case ci.TLS:
		tr.SourceLabels = map[string]string{"tls": "true"}
	default:
		tr.SourceLabels = map[string]string{"tls": "no_tls_from_remote"}
	}
	return tr
}

// tapWriter passes a response on while reporting it to a tap observation.
type tapWriter struct {
	http.ResponseWriter
	t       *tap.Tapped
	started bool
}

func (w *tapWriter) WriteHeader(status int) {
	if !w.started && status >= 200 {
		w.started = true
		w.t.ResponseInit(status, w.ResponseWriter.Header())
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *tapWriter) Write(b []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.t.Body(n)
	return n, err
}

// Flush sends what was written so far, when the client connection can.
func (w *tapWriter) Flush() {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the client's writer.
func (w *tapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// trailers returns the response's trailer fields, and grpc-status of a trailers-only
// gRPC response.
func (w *tapWriter) trailers() http.Header {
	var out http.Header
	for k, vv := range w.ResponseWriter.Header() {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if out == nil {
				out = http.Header{}
			}
			out[http.CanonicalHeaderKey(name)] = vv
		}
	}
	if vv := w.ResponseWriter.Header()["Grpc-Status"]; len(vv) > 0 && len(out["Grpc-Status"]) == 0 {
		if out == nil {
			out = http.Header{}
		}
		out["Grpc-Status"] = vv
	}
	return out
}
