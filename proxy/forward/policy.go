package forward

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/routes"
)

// maxReplayBody is the largest request body kept to be sent again on a retry, as in
// Linkerd; requests with larger bodies are not retried.
const maxReplayBody = 64 << 10

// ErrRouteTimeout is the failure of an attempt that got no response headers within its
// ServiceProfile route's timeout: 504, or gRPC DEADLINE_EXCEEDED.
var ErrRouteTimeout = errors.New("request timed out")

// exchange sends r to be's endpoints under the policy of route rt (which may be nil):
// each attempt picks an endpoint (the first uses first when non-nil), waits for the
// response headers at most the route's timeout, and a failed attempt is sent again
// while the route is retryable, the body could be kept (body, nil when r has none) and
// the retry budget allows. It returns the response to relay with the metrics handle of
// the endpoint that produced it; the caller records that response. bm, when set, is the
// outbound policy backend's series: exchange records each attempt on it but the last
// one's response, which the caller records, timed from the returned start of that
// attempt. r must have its hop headers removed; restoreH1 means r is an HTTP/1
// request carried over HTTP/2 to be forwarded as HTTP/1.
func (h *Handler) exchange(r *http.Request, be *Backend, first *balance.Endpoint[*Endpoint], rt *routes.Route, bm *metrics.Requests, body *replay, restoreH1 bool, start time.Time) (*http.Response, *metrics.HTTP, time.Time, error) {
	ctx := r.Context()
	r.URL.Scheme = "http"
	r.RequestURI = ""
	r.Close = false
	if body == nil {
		r.Body = http.NoBody
	}
	host := r.Host
	for attempt := 0; ; attempt++ {
		bep := first
		first = nil
		attemptStart := start
		if bm != nil {
			bm.Request()
			attemptStart = time.Now()
		}
		if bep == nil {
			var err error
			if bep, err = be.Balancer.Pick(ctx); err != nil {
				recordErr(bm, err, attemptStart)
				return nil, nil, attemptStart, err
			}
		}
		ep := bep.Value
		m := ep.metricsFor(r)
		m.Request()
		if rt != nil {
			rt.Actual.Request()
		}
		r.URL.Host = ep.hostPort
		r.Host = host
		if ep.AuthorityOverride != "" {
			r.Host = ep.AuthorityOverride
		}
		h2 := false
		switch {
		case restoreH1:
		case r.ProtoMajor == 2:
			h2 = true
		case ep.H2:
			r.Header[HeaderOrigProto] = origProtoHTTP11
			h2 = true
		default:
			delete(r.Header, HeaderOrigProto)
		}
		if body != nil {
			r.Body = body.reader()
		}
		req, cancel, timer := r, context.CancelCauseFunc(nil), (*time.Timer)(nil)
		if rt != nil && rt.Timeout > 0 {
			var actx context.Context
			actx, cancel = context.WithCancelCause(ctx)
			timer = time.AfterFunc(rt.Timeout, func() { cancel(ErrRouteTimeout) })
			req = r.WithContext(actx)
		}
		var sent time.Time
		if h.AccessLog != nil {
			sent = time.Now()
		}
		bep.Start()
		var resp *http.Response
		var err error
		switch {
		case h2:
			resp, err = h.Clients.h2.RoundTrip(req)
		default:
			resp, err = h.roundTripLean(req.Context(), ep, req, timer != nil)
		}
		if h.AccessLog != nil {
			addUpstreamWait(ctx, time.Since(sent))
		}
		if timer != nil {
			if !timer.Stop() && err == nil {
				resp.Body.Close() // the headers came as the timeout fired: it wins
				resp, err = nil, ErrRouteTimeout
			}
			if err != nil && context.Cause(req.Context()) == ErrRouteTimeout {
				err = ErrRouteTimeout
			}
			cancel(nil) // the body is not bound to the attempt's context past the headers
		}
		now := time.Now()
		bep.Done(now, now.Sub(start), be.Balancer.Decay())
		if rt != nil && rt.Accrual != nil {
			accrue(rt.Accrual, bep, err != nil || rt.IsFailure(resp.StatusCode, headerGRPCStatus(resp)), now)
		}
		if err != nil {
			if isConnectError(err) {
				bep.Failed(now.Add(h.failureBackoff()))
			}
			status, _ := StatusFor(err)
			m.Response(status, true, now.Sub(start))
			recordErr(bm, err, attemptStart)
			if rt == nil {
				return nil, m, attemptStart, err
			}
			rt.Actual.Response(status, true, now.Sub(start))
			if ctx.Err() == nil && retryableError(err) && mayRetry(rt, body, attempt) {
				continue
			}
			return nil, m, attemptStart, err
		}
		if rt == nil || rt.Accrual == nil || ep.failures.Load() == 0 {
			bep.Recovered()
		}
		if rt != nil && rt.Retryable && ctx.Err() == nil && rt.ShouldRetry(resp.StatusCode, headerGRPCStatus(resp)) && mayRetry(rt, body, attempt) {
			discard(resp)
			now = time.Now()
			m.Response(resp.StatusCode, true, now.Sub(start))
			rt.Actual.Response(resp.StatusCode, true, now.Sub(start))
			recordResp(bm, resp, false, attemptStart)
			continue
		}
		return resp, m, attemptStart, nil
	}
}

// accrue records an attempt's outcome on its endpoint under failure accrual: a success
// resets the count, and from the a.MaxFailures-th consecutive failure on the endpoint is
// avoided for a growing penalty.
func accrue(a *routes.Accrual, bep *balance.Endpoint[*Endpoint], failed bool, now time.Time) {
	ep := bep.Value
	if !failed {
		if ep.failures.Load() != 0 {
			ep.failures.Store(0)
		}
		return
	}
	if n := int(ep.failures.Add(1)); n >= a.MaxFailures {
		bep.Failed(now.Add(a.Penalty(n - a.MaxFailures)))
	}
}

// mayRetry reports whether a request on rt that failed its attempt (0-based) may be sent
// again, taking a retry from the budget when it may, and counts the retry or its refusal.
func mayRetry(rt *routes.Route, body *replay, attempt int) bool {
	if !rt.Retryable || (body != nil && !body.replayable()) || (rt.MaxRetries > 0 && attempt >= rt.MaxRetries) {
		return false
	}
	if !rt.Budget.Withdraw() {
		rt.Skipped.Add(1)
		return false
	}
	rt.Retries.Add(1)
	rt.RetryRequests.Request()
	return true
}

// retryableError reports whether a failed attempt may be retried: timeouts and
// connection failures may succeed on another try; fail-fast and load shedding would not.
func retryableError(err error) bool {
	return errors.Is(err, ErrRouteTimeout) || isConnectError(err)
}

// discard drops a response that will be retried, reading a short body to its end so
// its connection can be reused.
func discard(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}

func headerGRPCStatus(resp *http.Response) string {
	if vv := resp.Header["Grpc-Status"]; len(vv) > 0 {
		return vv[0]
	}
	return ""
}

// servePolicy forwards a request on a route with a timeout or retries; pm are its
// outbound policy series, if any.
func (h *Handler) servePolicy(w http.ResponseWriter, r *http.Request, be *Backend, rt *routes.Route, pm policyMetrics, start time.Time) {
	rt.Metrics.Request()
	removeHopHeaders(r.Header)
	restoreH1 := false
	if _, ok := r.Header[HeaderOrigProto]; ok && r.ProtoMajor == 2 {
		delete(r.Header, HeaderOrigProto)
		restoreH1 = true
	}
	var body *replay
	if r.Body != nil && r.Body != http.NoBody {
		body = newReplay(r.Body, rt.Retryable && r.ContentLength <= maxReplayBody)
	}
	if rt.Retryable {
		rt.Budget.Deposit()
	}
	resp, m, attemptStart, err := h.exchange(r, be, nil, rt, pm.backend, body, restoreH1, start)
	if err != nil {
		if m == nil {
			m = h.errorMetrics(ConnInfoFrom(r.Context())) // no endpoint was picked
		} else {
			m = nil // the endpoint's metrics have the failed attempts
		}
		status := h.fail(w, r, m, start, err)
		rt.Metrics.Response(status, true, time.Since(start))
		recordErr(pm.route, err, start)
		return
	}
	failure, aborted := h.copyResponse(w, resp)
	lat := time.Since(start)
	m.Response(resp.StatusCode, failure, lat)
	recordResp(pm.route, resp, aborted, start)
	recordResp(pm.backend, resp, aborted, attemptStart)
	routeFailure := aborted || rt.IsFailure(resp.StatusCode, grpcStatus(resp))
	rt.Actual.Response(resp.StatusCode, routeFailure, lat)
	rt.Metrics.Response(resp.StatusCode, routeFailure, lat)
	if aborted {
		panic(http.ErrAbortHandler)
	}
}

// replay keeps the first maxReplayBody bytes of a request body as they are read, so that
// a retry can send the body again while the client may still be sending it. Each attempt
// reads through its own reader; starting a new one invalidates the previous one.
type replay struct {
	mu   sync.Mutex
	src  io.ReadCloser
	buf  []byte
	keep bool // still keeping what is read (the body fits, and retries are possible)
	gen  int
	err  error
}

func newReplay(src io.ReadCloser, keep bool) *replay { return &replay{src: src, keep: keep} }

// replayable reports whether the whole body read so far has been kept.
func (b *replay) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.keep
}

func (b *replay) reader() io.ReadCloser {
	b.mu.Lock()
	b.gen++
	rr := &replayReader{b: b, gen: b.gen}
	b.mu.Unlock()
	return rr
}

var errReplaced = errors.New("request body taken over by a retry")

type replayReader struct {
	b   *replay
	gen int
	pos int
}

func (r *replayReader) Read(p []byte) (int, error) {
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.gen != b.gen {
		return 0, errReplaced
	}
	if b.keep && r.pos < len(b.buf) {
		n := copy(p, b.buf[r.pos:])
		r.pos += n
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.src.Read(p)
	if n > 0 && b.keep {
		if len(b.buf)+n > maxReplayBody {
			b.keep, b.buf = false, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
			r.pos += n
		}
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// Close leaves the client's body open: the server owns it.
func (r *replayReader) Close() error { return nil }

// grpcCodeFor returns the gRPC status a gRPC client gets for a proxy error answered
// with the HTTP status: DEADLINE_EXCEEDED for timeouts, INTERNAL for malformed requests,
// UNAVAILABLE otherwise.
func grpcCodeFor(status int) int {
	switch status {
	case http.StatusGatewayTimeout:
		return 4
	case http.StatusBadRequest, http.StatusRequestHeaderFieldsTooLarge:
		return 13
	}
	return 14
}

// grpcError answers a gRPC request with a proxy error as a trailers-only response, as
// Linkerd does: the HTTP status is 200 and the error travels in grpc-status and
// grpc-message (and l5d-proxy-error when emit is set).
func grpcError(w http.ResponseWriter, code int, reason string, emit bool) {
	dst := w.Header()
	if emit {
		dst.Set(HeaderProxyError, reason)
	}
	dst.Set("Content-Type", "application/grpc")
	dst.Set("Grpc-Status", strconv.Itoa(code))
	dst.Set("Grpc-Message", reason)
	w.WriteHeader(http.StatusOK)
}

// isGRPC reports whether r is a gRPC request (its content type is application/grpc...).
func isGRPC(r *http.Request) bool {
	ct := r.Header["Content-Type"]
	return len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc")
}
