package forward

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// policyMetrics are the outbound policy series of one request forwarded in one attempt:
// its route's and its backend's. Its end methods record the request on both, counting
// it in the backend's requests as it ends (a request handed from the HTTP/1 fast path
// to the general handler is counted once). Nil fields record nothing, and the zero value
// costs a nil check per event.
type policyMetrics struct{ route, backend *metrics.Requests }

func (p policyMetrics) none() bool { return p.route == nil && p.backend == nil }

// endResp records the request's response on both series (broken: its body failed).
func (p policyMetrics) endResp(resp *http.Response, broken bool, start time.Time) {
	if p.none() {
		return
	}
	p.endCode(resp.StatusCode, grpcStatus(resp), broken, start)
}

// endCode is endResp for a response's status and grpc-status ("" without one).
func (p policyMetrics) endCode(status int, grpc string, broken bool, start time.Time) {
	if p.none() {
		return
	}
	p.backend.Request()
	d := time.Since(start)
	recordStatus(p.route, status, grpc, broken, d)
	recordStatus(p.backend, status, grpc, broken, d)
}

// endErr records on both series a request that failed with err.
func (p policyMetrics) endErr(err error, start time.Time) {
	if p.none() {
		return
	}
	p.backend.Request()
	recordErr(p.route, err, start)
	recordErr(p.backend, err, start)
}

// endStatus records on both series an HTTP/1 response by its status (broken: it failed
// after its header).
func (p policyMetrics) endStatus(status int, broken bool, start time.Time) {
	if p.none() {
		return
	}
	p.backend.Request()
	d := time.Since(start)
	recordStatus(p.route, status, "", broken, d)
	recordStatus(p.backend, status, "", broken, d)
}

// recordResp records on q (nil records nothing) the response of a request that started
// at start; broken means its body failed.
func recordResp(q *metrics.Requests, resp *http.Response, broken bool, start time.Time) {
	if q != nil {
		recordStatus(q, resp.StatusCode, grpcStatus(resp), broken, time.Since(start))
	}
}

// recordStatus records on q (nil records nothing) a response of d by its HTTP status and
// grpc-status.
func recordStatus(q *metrics.Requests, status int, grpcStatus string, broken bool, d time.Duration) {
	if q == nil {
		return
	}
	if q.GRPC() {
		status = metrics.ParseGRPCStatus(grpcStatus)
	}
	e := metrics.ErrNone
	if broken {
		e = metrics.ErrUnknown
	}
	q.Done(status, e, d)
}

// recordErr records on q (nil records nothing) a request that started at start and
// failed with err. A refusal the proxy answers (a *RouteError: an injected failure, a
// redirect) is recorded with its status; other errors with their error label and no
// status (gRPC: UNKNOWN).
func recordErr(q *metrics.Requests, err error, start time.Time) {
	if q == nil {
		return
	}
	d := time.Since(start)
	grpc := q.GRPC()
	if re := (*RouteError)(nil); errors.As(err, &re) {
		st := re.Status
		if grpc {
			if st = re.GRPCCode; st == 0 {
				st = grpcCodeFor(re.Status)
			}
		}
		q.Done(st, metrics.ErrNone, d)
		return
	}
	st := 0
	if grpc {
		st = metrics.GRPCUnknown
	}
	q.Done(st, errorKind(err), d)
}

// errorKind is the error label of a forwarding error, as Linkerd's proxy labels it.
func errorKind(err error) metrics.ErrorKind {
	switch {
	case errors.Is(err, balance.ErrFailfast), errors.Is(err, balance.ErrUnavailable):
		return metrics.ErrFailFast
	case errors.Is(err, balance.ErrQueueFull):
		return metrics.ErrLoadShed
	case errors.Is(err, ErrRouteTimeout):
		return metrics.ErrResponseHeadersTimeout
	case errors.Is(err, context.DeadlineExceeded):
		return metrics.ErrRequestTimeout
	case errors.Is(err, context.Canceled):
		return metrics.ErrCancel
	}
	return metrics.ErrUnknown
}
