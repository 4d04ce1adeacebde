package forward

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/l5d-go/l5d/proxy/accesslog"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/routematch"
	"github.com/l5d-go/l5d/proxy/routes"
	"github.com/l5d-go/l5d/proxy/tap"
	"github.com/l5d-go/l5d/proxy/trace"
)

// Header names used between proxies and towards clients.
const (
	// HeaderOrigProto marks an HTTP/1 request carried as HTTP/2 between proxies; its value
	// is the original protocol ("HTTP/1.1").
	HeaderOrigProto = "L5d-Orig-Proto"
	// HeaderProxyError is set on responses the proxy generates, saying why.
	HeaderProxyError = "L5d-Proxy-Error"
)

var origProtoHTTP11 = []string{"HTTP/1.1"}

// Router selects the backend of a request arriving on the connection ci. An error is
// answered with the status of StatusFor.
type Router interface {
	Route(r *http.Request, ci *ConnInfo) (*Backend, error)
}

// HeaderRouter is implemented by Routers whose decisions on a connection may depend on
// header fields other than Host and l5d-dst-override, or on the query string; the HTTP/1
// fast path then hands them every field (otherwise it skips building the header map).
type HeaderRouter interface {
	RoutesOnHeaders(ci *ConnInfo) bool
}

// Handler forwards requests; see the package documentation.
type Handler struct {
	Router  Router
	Clients *Clients
	Log     *slog.Logger
	// ErrorMetrics records responses the proxy generates before an endpoint is picked
	// (no route, no endpoints) unless the Router is an ErrorMetricsRouter labelling them
	// per connection; nil skips them.
	ErrorMetrics *metrics.HTTP
	// FailureBackoff is how long an endpoint that refused a connection is avoided by the
	// balancer (default 1s).
	FailureBackoff time.Duration
	// HeaderReadTimeout and BodyIdleTimeout override the constants of the same names on
	// the fast path when positive (tests), and IdleTimeout its idle timeout (90s).
	HeaderReadTimeout, BodyIdleTimeout, IdleTimeout time.Duration
	// Tap, when set, is the proxy's tap sessions, which observe the requests they match.
	Tap *tap.Hub
	// AccessLog, when set, records every request (see serveLogged); HTTP/1 connections
	// then take the general handler.
	AccessLog *accesslog.Logger
	// ErrorHeaders, when set, reports whether the error responses the proxy answers
	// itself on a connection say why, in l5d-proxy-error and the body (gRPC errors keep
	// their grpc-message); nil means they always do. Linkerd's inbound proxy tells only
	// meshed clients, and its outbound proxy tells nobody in ingress mode, whose clients
	// are outside the cluster.
	ErrorHeaders func(ci *ConnInfo) bool
	// Trace, when set, records a span for each request with sampled trace context.
	Trace *trace.Tracer
}

// errorHeaders reports whether error responses on ci say why; see ErrorHeaders.
func (h *Handler) errorHeaders(ci *ConnInfo) bool {
	return h.ErrorHeaders == nil || h.ErrorHeaders(ci)
}

func (h *Handler) headerReadTimeout() time.Duration {
	if h.HeaderReadTimeout > 0 {
		return h.HeaderReadTimeout
	}
	return HeaderReadTimeout
}

func (h *Handler) idleTimeout() time.Duration {
	if h.IdleTimeout > 0 {
		return h.IdleTimeout
	}
	return clientIdleTimeout
}

func (h *Handler) bodyIdleTimeout() time.Duration {
	if h.BodyIdleTimeout > 0 {
		return h.BodyIdleTimeout
	}
	return BodyIdleTimeout
}

// ErrorMetricsRouter is implemented by Routers that label the responses the proxy
// generates on a connection (refusals, errors before an endpoint is picked) by that
// connection, e.g. with its client's mesh identity. ErrorMetrics returns nil to leave a
// response to Handler.ErrorMetrics.
type ErrorMetricsRouter interface {
	ErrorMetrics(ci *ConnInfo) *metrics.HTTP
}

// errorMetrics returns the handle recording the responses the proxy generates on ci.
func (h *Handler) errorMetrics(ci *ConnInfo) *metrics.HTTP {
	if er, ok := h.Router.(ErrorMetricsRouter); ok && ci != nil {
		if m := er.ErrorMetrics(ci); m != nil {
			return m
		}
	}
	return h.ErrorMetrics
}

// bufPool lends the buffers of a response's first bytes and of upgraded connections; bodies
// are relayed through relaybuf leases.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// ServeHTTP forwards r and writes the response, or a proxy error, to w.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if span := h.Trace.Start(r); span != nil {
		defer span.Finish()
		w = span.Writer(w)
	}
	if h.AccessLog != nil {
		h.serveLogged(w, r)
		return
	}
	if h.Tap.Active() {
		h.serveTapped(w, r)
		return
	}
	h.serve(w, r, nil)
}

// serve forwards r; tw, when not nil, is the tap observing it (w itself).
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, tw *tapWriter) {
	start := time.Now()
	ctx := r.Context()
	ci := ConnInfoFrom(ctx)
	if ci.inbound() {
		ci.setClientID(r.Header)
	}
	if r.ProtoMajor == 1 && r.Body != nil && r.Body != http.NoBody {
		h.timeBody(w, r)
	}
	be, err := h.route(r, ci)
	if err != nil {
		h.fail(w, r, h.errorMetrics(ci), start, err)
		return
	}
	h.serveRouted(w, r, tw, ci, be, start)
}

// serveRouted forwards r, arriving at start on ci and routed to be: through be's route
// policy, if any, else to an endpoint be's balancer picks.
func (h *Handler) serveRouted(w http.ResponseWriter, r *http.Request, tw *tapWriter, ci *ConnInfo, be *Backend, start time.Time) {
	var pm policyMetrics
	if be.Policy != nil && be.Policy.Active() {
		d, err := be.Policy.RouteRequest(r)
		if err != nil {
			h.fail(w, r, h.errorMetrics(ci), start, err)
			recordErr(d.RouteMetrics, err, start)
			return
		}
		if d.Backend != nil {
			be = d.Backend
			pm = policyMetrics{d.RouteMetrics, d.BackendMetrics}
			upgrade := upgradeType(r.Header) != ""
			if d.ModifyResponse != nil && !upgrade { // an upgrade needs the connection itself
				w = &modifiedResponse{ResponseWriter: w, modify: d.ModifyResponse}
			}
			if d.Route != nil && !upgrade {
				h.servePolicy(w, r, be, d.Route, pm, start)
				return
			}
		}
	} else if be.Policy != nil {
		pm.route, pm.backend = be.Policy.DefaultMetrics(be, r.Host)
	}
	var rt *routes.Route
	if be.Routes != nil {
		if rt = be.Routes.Load().Match(r.Method, routePath(r)); rt != nil && rt.NeedsPolicy() && upgradeType(r.Header) == "" {
			h.servePolicy(w, r, be, rt, pm, start)
			return
		}
	}
	bep, err := be.Balancer.Pick(r.Context())
	if err != nil {
		status := h.fail(w, r, h.errorMetrics(ci), start, err)
		recordRoute(rt, status, true, start)
		pm.endErr(err, start)
		return
	}
	h.servePicked(w, r, tw, be, bep, rt, pm, start)
}

// servePicked forwards r to bep, the endpoint picked from be, and relays the response: rt
// is r's profile route and pm its policy series, if any, on which it is recorded.
func (h *Handler) servePicked(w http.ResponseWriter, r *http.Request, tw *tapWriter, be *Backend, bep *balance.Endpoint[*Endpoint], rt *routes.Route, pm policyMetrics, start time.Time) {
	ctx := r.Context()
	ep := bep.Value
	if tw != nil {
		tw.picked(ep)
	}
	m := ep.metricsFor(r)
	m.Request()

	upgrade := upgradeType(r.Header)
	removeHopHeaders(r.Header)
	r.URL.Scheme = "http"
	r.URL.Host = ep.hostPort
	if ep.AuthorityOverride != "" {
		r.Host = ep.AuthorityOverride
	}
	r.RequestURI = ""
	r.Close = false
	// HTTP/2 to an endpoint that takes it (another proxy, or an HTTP/2 request's own
	// endpoint); HTTP/1 otherwise, upgrades always (see README: which request takes which
	// path).
	sendH2 := false
	switch {
	case upgrade != "":
		r.Header["Connection"] = []string{"Upgrade"}
		r.Header["Upgrade"] = []string{upgrade}
	case r.ProtoMajor == 2:
		if _, ok := r.Header[HeaderOrigProto]; ok {
			delete(r.Header, HeaderOrigProto) // restore HTTP/1 for the application
		} else {
			sendH2 = true
		}
	case ep.H2:
		r.Header[HeaderOrigProto] = origProtoHTTP11
		sendH2 = true
	}

	var sent time.Time
	if h.AccessLog != nil {
		sent = time.Now()
	}
	bep.Start()
	var resp *http.Response
	var err error
	if sendH2 {
		resp, err = h.Clients.h2.RoundTrip(r)
	} else {
		resp, err = h.roundTripLean(ctx, ep, r, false)
	}
	now := time.Now()
	if h.AccessLog != nil {
		addUpstreamWait(ctx, now.Sub(sent))
	}
	h.attemptEnded(be, bep, start, now, err)
	if err != nil {
		status := h.fail(w, r, m, start, err)
		recordRoute(rt, status, true, start)
		pm.endErr(err, start)
		return
	}
	bep.Recovered()
	if resp.StatusCode == http.StatusSwitchingProtocols && upgrade != "" {
		pm.endResp(resp, false, start)
		h.serveUpgrade(w, resp, m, start)
		return
	}
	failure, aborted := h.copyResponse(w, resp)
	lat := time.Since(start)
	m.Response(resp.StatusCode, failure, lat)
	pm.endResp(resp, aborted, start)
	if rt != nil {
		recordRoute(rt, resp.StatusCode, aborted || rt.IsFailure(resp.StatusCode, grpcStatus(resp)), start)
	}
	if aborted {
		// Abort the client's stream so that it sees the failure rather than a short body.
		panic(http.ErrAbortHandler)
	}
}

// route returns the backend of r: the one the fast path chose when r is the request it
// handed over on ci, else the Router's. A request is routed once: the Router's decision
// may count (inbound authorization, rate limits) or ask discovery.
func (h *Handler) route(r *http.Request, ci *ConnInfo) (*Backend, error) {
	if ci != nil && ci.routed != nil {
		be := ci.routed
		ci.routed = nil
		return be, nil
	}
	return h.Router.Route(r, ci)
}

// timeBody makes the HTTP/1 request body of r fail once it makes no progress for
// BodyIdleTimeout, through the general server's connection deadline (as the fast path
// does); the deadline is lifted when the body ends.
func (h *Handler) timeBody(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	now := time.Now()
	if rc.SetReadDeadline(now.Add(h.bodyIdleTimeout())) != nil {
		return
	}
	r.Body = &idleBody{ReadCloser: r.Body, rc: rc, timeout: h.bodyIdleTimeout(), since: now}
}

// idleBody renews its connection's read deadline as the body makes progress (at most
// once a second) and lifts it at the end of the body.
type idleBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	since   time.Time
	done    bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	if !b.done {
		if now := time.Now(); now.Sub(b.since) > time.Second {
			b.rc.SetReadDeadline(now.Add(b.timeout))
			b.since = now
		}
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		if err == io.EOF { // a failed body keeps its deadline: the server closes the connection
			b.rc.SetReadDeadline(time.Time{})
		}
	}
	return n, err
}

// routePath is r's path as route matching compares it (routematch.NormalizePath).
func routePath(r *http.Request) string {
	p, _ := routematch.NormalizePath(r.URL.EscapedPath())
	return p
}

// recordRoute records a request on a route without retries (rt may be nil): its one
// attempt is both the effective and the actual request.
func recordRoute(rt *routes.Route, status int, failure bool, start time.Time) {
	if rt == nil {
		return
	}
	lat := time.Since(start)
	rt.Metrics.Request()
	rt.Actual.Request()
	rt.Metrics.Response(status, failure, lat)
	rt.Actual.Response(status, failure, lat)
}

// headerAdopter is a ResponseWriter that can take over a header map (h2's).
type headerAdopter interface {
	AdoptHeader(http.Header) bool
}

// copyResponse streams resp to w and reports whether the response is a failure for
// metrics: a 5xx status, a non-zero gRPC status or a broken body (aborted).
func (h *Handler) copyResponse(w http.ResponseWriter, resp *http.Response) (failure, aborted bool) {
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	delete(resp.Header, "Te") // a request field (removeHopHeaders keeps "TE: trailers" for requests)
	var dst http.Header
	if a, ok := w.(headerAdopter); ok && a.AdoptHeader(resp.Header) {
		dst = resp.Header // the response's map, which nothing else uses, becomes w's
	} else {
		dst = w.Header()
		for k, vv := range resp.Header {
			dst[k] = vv
		}
	}
	if resp.ContentLength >= 0 && len(resp.Header["Content-Length"]) == 0 && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified {
		dst.Set("Content-Length", itoa(resp.ContentLength))
	}
	w.WriteHeader(resp.StatusCode)
	failure = resp.StatusCode >= 500

	flusher, _ := w.(http.Flusher)
	stream := resp.ContentLength < 0 && flusher != nil
	if stream {
		flusher.Flush() // streaming clients (gRPC, SSE) need the headers now
	}
	var bodyErr error
	if wt, ok := resp.Body.(io.WriterTo); ok && !stream {
		// An HTTP/2 response's body writes its large DATA from the buffers it arrived in.
		_, bodyErr = wt.WriteTo(w)
	} else {
		var f http.Flusher // nil: no flush after each write
		if stream {
			f = flusher
		}
		bodyErr = copyStreamTo(w, resp.Body, f)
	}
	if bodyErr != nil {
		if h.Log != nil {
			h.Log.Debug("response body interrupted", "error", bodyErr)
		}
		return true, true
	}
	for k, vv := range resp.Trailer {
		dst[http.TrailerPrefix+k] = vv
	}
	if grpc := grpcStatus(resp); grpc != "" && grpc != "0" {
		failure = true
	}
	return failure, false
}

func grpcStatus(resp *http.Response) string {
	if vv := resp.Trailer["Grpc-Status"]; len(vv) > 0 {
		return vv[0]
	}
	if vv := resp.Header["Grpc-Status"]; len(vv) > 0 {
		return vv[0]
	}
	return ""
}

// StatusFor maps a forwarding error to the status the client gets and the reason put in
// l5d-proxy-error.
func StatusFor(err error) (int, string) {
	var ce *ConnectError
	var re *RouteError
	switch {
	case errors.As(err, &re):
		return re.Status, re.Reason
	case errors.Is(err, balance.ErrQueueFull):
		return http.StatusServiceUnavailable, "service in fail-fast: queue full"
	case errors.Is(err, balance.ErrUnavailable):
		return http.StatusServiceUnavailable, "service in fail-fast: no endpoints"
	case errors.Is(err, balance.ErrFailfast):
		return http.StatusGatewayTimeout, "no endpoints available: failfast timeout"
	case errors.As(err, &ce):
		return http.StatusBadGateway, "connection refused or failed: " + ce.Addr
	case errors.Is(err, ErrRouteTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "request timed out"
	}
	return http.StatusBadGateway, "upstream request failed"
}

// RouteError is a routing failure with the status to answer.
type RouteError struct {
	Status int
	// GRPCCode, when not 0, is the grpc-status gRPC requests get instead (in an HTTP 200
	// trailers-only response).
	GRPCCode int
	Reason   string
	// Location, when set, makes the answer a redirect: Status with this Location and
	// no l5d-proxy-error (an HTTPRoute's RequestRedirect filter).
	Location string
}

func (e *RouteError) Error() string { return e.Reason }

// fail answers r with the proxy error for err, records it on m (when non-nil) and
// returns the status recorded. gRPC requests get the matching gRPC status instead.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, m *metrics.HTTP, start time.Time, err error) int {
	status, reason := StatusFor(err)
	if r.Context().Err() == context.Canceled {
		return status // the client went away; there is nobody to answer
	}
	if h.Log != nil {
		h.Log.Debug("proxy error", "status", status, "host", r.Host, "error", err)
	}
	if re := (*RouteError)(nil); errors.As(err, &re) && re.Location != "" {
		w.Header().Set("Location", re.Location)
		w.WriteHeader(status)
		if m != nil {
			m.Request()
			m.Response(status, false, time.Since(start))
		}
		return status
	}
	if isGRPC(r) {
		code := grpcCodeFor(status)
		if re := (*RouteError)(nil); errors.As(err, &re) && re.GRPCCode != 0 {
			code = re.GRPCCode
		}
		grpcError(w, code, reason, h.errorHeaders(ConnInfoFrom(r.Context())))
		if m != nil {
			m.Request()
			m.Response(http.StatusOK, true, time.Since(start))
		}
		return http.StatusOK
	}
	dst := w.Header()
	if !h.errorHeaders(ConnInfoFrom(r.Context())) {
		dst.Set("Content-Length", "0")
		w.WriteHeader(status)
		if m != nil {
			m.Request()
			m.Response(status, true, time.Since(start))
		}
		return status
	}
	dst.Set(HeaderProxyError, reason)
	dst.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, reason+"\n")
	if m != nil {
		m.Request()
		m.Response(status, true, time.Since(start))
	}
	return status
}

// hopHeaders are connection-specific and never forwarded.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopHeaders(h http.Header) {
	if c := h["Connection"]; len(c) > 0 {
		for _, v := range c {
			for f := range strings.SplitSeq(v, ",") {
				if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "close") && !strings.EqualFold(f, "keep-alive") {
					delete(h, http.CanonicalHeaderKey(f))
				}
			}
		}
	}
	te := h["Te"]
	for _, k := range hopHeaders {
		delete(h, k)
	}
	// "TE: trailers" is the one TE value HTTP/2 allows; gRPC clients send it.
	for _, v := range te {
		if strings.EqualFold(strings.TrimSpace(v), "trailers") {
			h["Te"] = teTrailers
		}
	}
}

var teTrailers = []string{"trailers"}

// upgradeType returns the protocol a request asks to switch to, or "".
func upgradeType(h http.Header) string {
	c := h["Connection"]
	if len(c) == 0 {
		return ""
	}
	for _, v := range c {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "upgrade") {
				if u := h["Upgrade"]; len(u) > 0 {
					return u[0]
				}
			}
		}
	}
	return ""
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

// modifiedResponse applies modify to the response header fields when they are sent.
type modifiedResponse struct {
	http.ResponseWriter
	modify  func(http.Header)
	written bool
}

func (m *modifiedResponse) WriteHeader(status int) {
	if !m.written {
		m.written = true
		if status >= 200 {
			m.modify(m.ResponseWriter.Header())
		}
	}
	m.ResponseWriter.WriteHeader(status)
}

func (m *modifiedResponse) Write(b []byte) (int, error) {
	if !m.written {
		m.WriteHeader(http.StatusOK)
	}
	return m.ResponseWriter.Write(b)
}

// Flush sends what was written so far, when the client connection can.
func (m *modifiedResponse) Flush() {
	if !m.written {
		m.WriteHeader(http.StatusOK)
	}
	if f, ok := m.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the client's writer.
func (m *modifiedResponse) Unwrap() http.ResponseWriter { return m.ResponseWriter }
