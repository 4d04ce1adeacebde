package forward

import (
	"net/http"
	"strings"
	"time"

	"github.com/l5d-go/l5d/proxy/tap"
)

// serveTapped serves r as serve does, while Handler.Tap has sessions open. An inbound
// request is matched against them at once; an outbound one once its endpoint is picked
// (so destination and its labels are the endpoint's), or when its answer starts if no
// endpoint is (a proxy error, an outbound policy route).
func (h *Handler) serveTapped(w http.ResponseWriter, r *http.Request) {
	ci := ConnInfoFrom(r.Context())
	tw := &tapWriter{ResponseWriter: w, hub: h.Tap, req: tapRequest(r, ci), hdr: r.Header}
	if tw.req.Inbound {
		tw.begin()
		if tw.t == nil {
			h.serve(w, r, nil)
			return
		}
	}
	ended := false
	defer func() {
		if !ended {
			tw.begin()
			if tw.t != nil {
				tw.t.End(nil, true) // the handler aborted the stream
			}
		}
	}()
	h.serve(tw, r, tw)
	ended = true
	tw.begin()
	if tw.t == nil {
		return
	}
	if !tw.responded {
		tw.t.ResponseInit(http.StatusOK, nil)
	}
	tw.t.End(tw.trailers(), false)
}

// tapRequest describes r on the connection ci for tap matching.
func tapRequest(r *http.Request, ci *ConnInfo) *tap.Request {
	tr := &tap.Request{Start: time.Now(), Method: r.Method, Scheme: "http", Authority: r.Host, Path: r.URL.Path}
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

// tapWriter passes a response on while reporting the request to the tap sessions that
// match it.
type tapWriter struct {
	http.ResponseWriter
	hub *tap.Hub
	// req and hdr are the request until it is matched (begin), nil after.
	req *tap.Request
	hdr http.Header
	// t is the observation, nil when no session matched.
	t         *tap.Tapped
	responded bool
}

// begin matches the request against the sessions, once.
func (w *tapWriter) begin() {
	if w.req != nil {
		w.t = w.hub.Start(w.req, w.hdr)
		w.req, w.hdr = nil, nil
	}
}

// picked makes ep the request's destination and matches it.
func (w *tapWriter) picked(ep *Endpoint) {
	if w.req != nil {
		w.req.Destination, w.req.DestinationLabels = ep.Addr, ep.TapLabels
		w.begin()
	}
}

func (w *tapWriter) WriteHeader(status int) {
	if !w.responded && status >= 200 {
		w.responded = true
		w.begin()
		if w.t != nil {
			w.t.ResponseInit(status, w.ResponseWriter.Header())
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *tapWriter) Write(b []byte) (int, error) {
	if !w.responded {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	if w.t != nil {
		w.t.Body(n)
	}
	return n, err
}

// Flush sends what was written so far, when the client connection can.
func (w *tapWriter) Flush() {
	if !w.responded {
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
