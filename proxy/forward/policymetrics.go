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
// its route's and its backend's. Nil fields record nothing.
type policyMetrics struct{ route, backend *metrics.Requests }

// end records the request's end on both series; see recordPolicy.
func (p policyMetrics) end(resp *http.Response, broken bool, err error, start time.Time) {
	if p.route == nil && p.backend == nil {
		return
	}
	recordPolicy(p.route, resp, broken, err, start)
	recordPolicy(p.backend, resp, broken, err, start)
}

// recordPolicy records on q (nil records nothing) the end of a request that started at
// start: its response resp (broken when the response body failed), or err when there was
// none. A refusal the proxy answers (a *RouteError: an injected failure, a redirect) is
// recorded with its status; other errors with their error label and no status (gRPC:
// UNKNOWN).
func recordPolicy(q *metrics.Requests, resp *http.Response, broken bool, err error, start time.Time) {
	if q == nil {
		return
	}
	d := time.Since(start)
	grpc := q.GRPC()
	if err != nil {
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
		return
	}
	st := resp.StatusCode
	if grpc {
		st = metrics.ParseGRPCStatus(grpcStatus(resp))
	}
	e := metrics.ErrNone
	if broken {
		e = metrics.ErrUnknown
	}
	q.Done(st, e, d)
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
