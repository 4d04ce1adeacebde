package metricsapi

import (
	"context"
	"math"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/pkg/vizapi"
	"github.com/l5d-go/l5d/viz/metricsapi/promql"
)

// defaultName is how a default server or route is shown.
const defaultName = "[default]"

// routeStatsRequest validates a RouteStatsRequest, returning its selection and window.
func routeStatsRequest(req *vizapi.RouteStatsRequest) (promql.Selection, string, error) {
	r := req.Resource
	if err := validResource("resource", &r, false); err != nil {
		return promql.Selection{}, "", err
	}
	if r.Type == vizapi.Authority || r.Type == vizapi.Service {
		return promql.Selection{}, "", badRequest("resource type %s is not supported: name a workload, pod or namespace", r.Type)
	}
	window := req.TimeWindow
	if window == "" {
		window = vizapi.DefaultTimeWindow
	}
	if _, err := vizapi.ParseWindow(window); err != nil {
		return promql.Selection{}, "", badRequest("%v", err)
	}
	sel, err := promql.ResourceSelection(r)
	if err != nil {
		return promql.Selection{}, "", badRequest("%v", err)
	}
	return sel, window, nil
}

// queries runs queries concurrently, returning their vectors in order.
func (s *Server) queries(ctx context.Context, qs ...string) ([]model.Vector, error) {
	out := make([]model.Vector, len(qs))
	g, gctx := errgroup.WithContext(ctx)
	for i, q := range qs {
		g.Go(func() (err error) { out[i], err = s.vector(gctx, q); return })
	}
	return out, g.Wait()
}

func name(m model.Metric, groupBy model.LabelNames) string {
	return string(m[groupBy[len(groupBy)-1]])
}

func routeName(m model.Metric) (route, kind string) {
	route, kind = string(m["route_name"]), string(m["route_kind"])
	if route == "default" {
		route = defaultName
	}
	if kind == "default" {
		route, kind = defaultName, ""
	}
	return route, kind
}

func setLatency(l *vizapi.Latencies, q int, v model.SampleValue, scale float64) {
	f := float64(v)
	if math.IsNaN(f) {
		return
	}
	f *= scale
	switch q {
	case 0:
		l.P50 = &f
	case 1:
		l.P95 = &f
	case 2:
		l.P99 = &f
	}
}

// StatInbound answers the per-server, per-route figures of a resource's inbound HTTP
// traffic, from response_total and response_latency_ms with the proxies' srv_* and
// route_* labels.
func (s *Server) StatInbound(ctx context.Context, req *vizapi.RouteStatsRequest) (*vizapi.StatInboundResponse, error) {
	sel, window, err := routeStatsRequest(req)
	if err != nil {
		return nil, err
	}
	match := model.LabelSet{promql.LabelDirection: "inbound"}.Merge(sel.Match)
	keys := model.LabelNames{"srv_name", "srv_kind", "route_name", "route_kind", "target_port"}
	qs := []string{promql.Increase("response_total", match, window, keys, model.LabelNames{promql.LabelClassification}, sel.GroupBy)}
	for _, q := range promql.Quantiles {
		qs = append(qs, promql.Quantile(q, "response_latency_ms_bucket", match, window, keys, sel.GroupBy))
	}
	vecs, err := s.queries(ctx, qs...)
	if err != nil {
		return nil, err
	}
	type key struct{ name, server, port, route, kind string }
	rows := map[key]*vizapi.InboundRow{}
	get := func(m model.Metric) *vizapi.InboundRow {
		server := string(m["srv_name"])
		if m["srv_kind"] == "default" {
			server = defaultName
		}
		route, kind := routeName(m)
		k := key{name(m, sel.GroupBy), server, string(m["target_port"]), route, kind}
		if rows[k] == nil {
			rows[k] = &vizapi.InboundRow{Name: k.name, Server: k.server, Port: k.port, Route: k.route, RouteType: k.kind}
		}
		return rows[k]
	}
	for _, smp := range vecs[0] {
		r := get(smp.Metric)
		if smp.Metric[promql.LabelClassification] == "success" {
			r.SuccessCount += count(smp.Value)
		} else {
			r.FailureCount += count(smp.Value)
		}
	}
	for q, vec := range vecs[1:] {
		for _, smp := range vec {
			setLatency(&get(smp.Metric).Latencies, q, smp.Value, 1)
		}
	}
	rsp := &vizapi.StatInboundResponse{TimeWindow: window, Rows: []vizapi.InboundRow{}}
	for _, r := range rows {
		if r.SuccessCount+r.FailureCount > 0 {
			rsp.Rows = append(rsp.Rows, *r)
		}
	}
	slices.SortFunc(rsp.Rows, func(a, b vizapi.InboundRow) int {
		return strings.Compare(a.Name+"\x00"+a.Server+"\x00"+a.Port+"\x00"+a.Route, b.Name+"\x00"+b.Server+"\x00"+b.Port+"\x00"+b.Route)
	})
	return rsp, nil
}

// timeoutErrors are the proxy's error label values of requests that timed out.
var timeoutErrors = map[model.LabelValue]bool{"RESPONSE_HEADERS_TIMEOUT": true, "REQUEST_TIMEOUT": true}

// failed classifies a status sample: HTTP 5xx, a gRPC status other than OK, or any
// proxy error.
func failed(m model.Metric) bool {
	if m["error"] != "" {
		return true
	}
	if st, ok := m["grpc_status"]; ok {
		return st != "OK" && st != "0"
	}
	return strings.HasPrefix(string(m["http_status"]), "5")
}

// StatOutbound answers the per-route and per-backend figures of a resource's outbound
// HTTP and gRPC traffic, from the proxies' outbound_{http,grpc}_route_* families:
// request statuses and durations of each route as the application saw them, its
// retries, and the responses of each backend.
func (s *Server) StatOutbound(ctx context.Context, req *vizapi.RouteStatsRequest) (*vizapi.StatOutboundResponse, error) {
	sel, window, err := routeStatsRequest(req)
	if err != nil {
		return nil, err
	}
	route := model.LabelNames{"parent_name", "parent_port", "route_name", "route_kind"}
	backend := model.LabelNames{"backend_name", "backend_port"}
	type key struct{ name, service, port, route, kind string }
	rows := map[key]*vizapi.OutboundRow{}
	get := func(m model.Metric) *vizapi.OutboundRow {
		rt, kind := routeName(m)
		k := key{name(m, sel.GroupBy), string(m["parent_name"]), string(m["parent_port"]), rt, kind}
		if rows[k] == nil {
			rows[k] = &vizapi.OutboundRow{Name: k.name, Service: k.service, Port: k.port, Route: k.route, RouteType: k.kind, Backends: []vizapi.OutboundBackend{}}
		}
		return rows[k]
	}
	getBackend := func(m model.Metric) *vizapi.OutboundBackend {
		r := get(m)
		n, p := string(m["backend_name"]), string(m["backend_port"])
		for i := range r.Backends {
			if r.Backends[i].Name == n && r.Backends[i].Port == p {
				return &r.Backends[i]
			}
		}
		r.Backends = append(r.Backends, vizapi.OutboundBackend{Name: n, Port: p})
		return &r.Backends[len(r.Backends)-1]
	}
	for _, proto := range []string{"http", "grpc"} {
		status := model.LabelNames{"http_status", "error"}
		if proto == "grpc" {
			status = model.LabelNames{"grpc_status", "error"}
		}
		f := "outbound_" + proto + "_route_"
		qs := []string{
			promql.Increase(f+"request_statuses_total", sel.Match, window, route, status, sel.GroupBy),
			promql.Increase(f+"retry_requests_total", sel.Match, window, route, sel.GroupBy),
			promql.Increase(f+"backend_response_statuses_total", sel.Match, window, route, backend, status, sel.GroupBy),
		}
		for _, q := range promql.Quantiles {
			qs = append(qs, promql.Quantile(q, f+"request_duration_seconds_bucket", sel.Match, window, route, sel.GroupBy))
		}
		for _, q := range promql.Quantiles {
			qs = append(qs, promql.Quantile(q, f+"backend_response_duration_seconds_bucket", sel.Match, window, route, backend, sel.GroupBy))
		}
		vecs, err := s.queries(ctx, qs...)
		if err != nil {
			return nil, err
		}
		for _, smp := range vecs[0] {
			r, n := get(smp.Metric), count(smp.Value)
			if failed(smp.Metric) {
				r.FailureCount += n
			} else {
				r.SuccessCount += n
			}
			if timeoutErrors[smp.Metric["error"]] {
				r.Timeouts += n
			}
		}
		for _, smp := range vecs[1] {
			get(smp.Metric).Retries += count(smp.Value)
		}
		for _, smp := range vecs[2] {
			b, n := getBackend(smp.Metric), count(smp.Value)
			if failed(smp.Metric) {
				b.FailureCount += n
			} else {
				b.SuccessCount += n
			}
			if timeoutErrors[smp.Metric["error"]] {
				b.Timeouts += n
			}
		}
		for q, vec := range vecs[3:6] {
			for _, smp := range vec {
				setLatency(&get(smp.Metric).Latencies, q, smp.Value, 1000)
			}
		}
		for q, vec := range vecs[6:9] {
			for _, smp := range vec {
				setLatency(&getBackend(smp.Metric).Latencies, q, smp.Value, 1000)
			}
		}
	}
	rsp := &vizapi.StatOutboundResponse{TimeWindow: window, Rows: []vizapi.OutboundRow{}}
	for _, r := range rows {
		if r.SuccessCount+r.FailureCount == 0 {
			continue
		}
		slices.SortFunc(r.Backends, func(a, b vizapi.OutboundBackend) int {
			return strings.Compare(a.Name+"\x00"+a.Port, b.Name+"\x00"+b.Port)
		})
		rsp.Rows = append(rsp.Rows, *r)
	}
	slices.SortFunc(rsp.Rows, func(a, b vizapi.OutboundRow) int {
		return strings.Compare(a.Name+"\x00"+a.Service+"\x00"+a.Port+"\x00"+a.Route, b.Name+"\x00"+b.Service+"\x00"+b.Port+"\x00"+b.Route)
	})
	return rsp, nil
}
