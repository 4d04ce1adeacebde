package metricsapi

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/pkg/vizapi"
	"github.com/l5d-go/l5d/viz/metricsapi/promql"
)

// TopRoutes answers a TopRoutesRequest with a table per selected resource: a row per
// ServiceProfile route (declared routes even without traffic, and [DEFAULT] for
// requests that matched none) and per Gateway API route (HTTPRoute, GRPCRoute) with
// traffic, of each authority.
//
// Without ToResource the authorities are the services selecting the resource's pods and
// the figures those of the requests its pods served: the inbound route series of its
// proxies or, where the proxies export none, the route series of every client's
// requests to those services. With ToResource (a service, or a workload whose services
// are taken) the figures are those of the resource's own requests to it, with the
// actual counts (every attempt, retries included) beside the effective ones.
func (s *Server) TopRoutes(ctx context.Context, req *vizapi.TopRoutesRequest) (*vizapi.TopRoutesResponse, error) {
	sel := req.Selector.Resource
	if err := validResource("selector", &sel, false); err != nil {
		return nil, err
	}
	if sel.Type == vizapi.Authority {
		return nil, badRequest("routes of authorities are not supported: use a service or workload")
	}
	if req.ToResource != nil {
		if err := validResource("to resource", req.ToResource, false); err != nil {
			return nil, err
		}
		if req.ToResource.Type == vizapi.Authority || req.ToResource.Type == vizapi.Namespace {
			return nil, badRequest("--to must name a service or workload, not a %s", req.ToResource.Type)
		}
	}
	window := req.TimeWindow
	if window == "" {
		window = vizapi.DefaultTimeWindow
	}
	if _, err := vizapi.ParseWindow(window); err != nil {
		return nil, badRequest("%v", err)
	}
	objs, err := s.Cache.List(sel, req.Selector.LabelSelector)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	ok := &vizapi.TopRoutesOk{}
	for _, o := range objs {
		t, err := s.routeTable(ctx, o.Resource, req.ToResource, window)
		if err != nil {
			return nil, err
		}
		ok.Routes = append(ok.Routes, t)
	}
	return &vizapi.TopRoutesResponse{Ok: ok}, nil
}

// routeKey is one route of one authority (without port).
type routeKey struct{ route, authority string }

func (s *Server) routeTable(ctx context.Context, r vizapi.Resource, to *vizapi.Resource, window string) (vizapi.RouteTable, error) {
	table := vizapi.RouteTable{Resource: r.Type + "/" + r.Name, Rows: []vizapi.RouteRow{}}
	svcOf := r
	if to != nil {
		svcOf = *to
		if svcOf.Namespace == "" {
			svcOf.Namespace = r.Namespace
		}
	}
	svcs, err := s.Cache.ServicesOf(svcOf)
	if err != nil {
		return table, badRequest("%v", err)
	}
	var authorities []string
	for _, svc := range svcs {
		authorities = append(authorities, fmt.Sprintf("%s.%s.svc.%s", svc.Name, svc.Namespace, s.clusterDomain()))
	}
	if len(authorities) == 0 {
		return table, nil
	}
	dst := model.LabelValue(authorityRegexp(authorities))
	var effective, actual model.LabelSet
	if to == nil {
		effective = model.LabelSet{promql.LabelDirection: "inbound", promql.LabelNamespace: model.LabelValue(r.Namespace)}
		if r.Type != vizapi.Namespace {
			kl, err := promql.KindLabel(r.Type)
			if err != nil {
				return table, badRequest("%v", err)
			}
			effective[kl] = model.LabelValue(r.Name)
		}
	} else {
		effective = model.LabelSet{promql.LabelDirection: "outbound", promql.LabelNamespace: model.LabelValue(r.Namespace)}
		if r.Type != vizapi.Namespace {
			kl, err := promql.KindLabel(r.Type)
			if err != nil {
				return table, badRequest("%v", err)
			}
			effective[kl] = model.LabelValue(r.Name)
		}
		actual = effective
	}
	stats, err := s.routeStats(ctx, effective, dst, actual != nil, window)
	if err != nil {
		return table, err
	}
	if to == nil && len(stats) == 0 {
		// No inbound route series: count what every client sent to the services.
		if stats, err = s.routeStats(ctx, model.LabelSet{promql.LabelDirection: "outbound"}, dst, false, window); err != nil {
			return table, err
		}
	}
	// Gateway API routes (HTTPRoute, GRPCRoute) of the services: the clients' outbound
	// route families; with to, the resource's own.
	var src model.LabelSet
	if to != nil {
		src = effective.Clone()
		delete(src, promql.LabelDirection)
	}
	names := make([]string, len(svcs))
	for i, svc := range svcs {
		names[i] = svc.Name
	}
	gw, err := s.gatewayRouteStats(ctx, src, svcs[0].Namespace, names, window)
	if err != nil {
		return table, err
	}
	for k, st := range gw {
		// A ServiceProfile's [DEFAULT] already counts what its routes did not match.
		if stats[k] == nil {
			stats[k] = st
		}
	}
	keys := map[routeKey]bool{}
	for _, a := range authorities {
		names, err := s.Cache.ProfileRoutes(svcOfNamespace(a), a)
		if err != nil {
			return table, err
		}
		for _, n := range names {
			keys[routeKey{n, a}] = true
		}
		keys[routeKey{vizapi.DefaultRoute, a}] = true
	}
	for k := range stats {
		keys[k] = true
	}
	sorted := make([]routeKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.SortFunc(sorted, func(a, b routeKey) int {
		if c := strings.Compare(a.authority, b.authority); c != 0 {
			return c
		}
		// [DEFAULT] last, as Linkerd prints it.
		if (a.route == vizapi.DefaultRoute) != (b.route == vizapi.DefaultRoute) {
			if a.route == vizapi.DefaultRoute {
				return 1
			}
			return -1
		}
		return strings.Compare(a.route, b.route)
	})
	for _, k := range sorted {
		table.Rows = append(table.Rows, vizapi.RouteRow{Route: k.route, Authority: k.authority, Stats: stats[k], TimeWindow: window})
	}
	return table, nil
}

// svcOfNamespace is the namespace of a "name.ns.svc.domain" authority.
func svcOfNamespace(authority string) string {
	parts := strings.SplitN(authority, ".", 3)
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

// authorityRegexp matches the dst label of requests to any of the authorities, with or
// without a port.
func authorityRegexp(authorities []string) string {
	quoted := make([]string, len(authorities))
	for i, a := range authorities {
		quoted[i] = regexp.QuoteMeta(a)
	}
	return "(" + strings.Join(quoted, "|") + ")(:\\d+)?"
}

// routeStats queries the route series matching match and dst=~dstRe, keyed by route and
// authority; with actual, the route_actual_* counts too.
func (s *Server) routeStats(ctx context.Context, match model.LabelSet, dstRe model.LabelValue, actual bool, window string) (map[routeKey]*vizapi.BasicStats, error) {
	sel := match.String()
	sel = sel[:len(sel)-1]
	if len(match) > 0 {
		sel += ", "
	}
	sel += fmt.Sprintf("%s=~%q}", promql.LabelRouteDst, string(dstRe))
	var (
		eff, act  model.Vector
		latencies = make([]model.Vector, len(promql.Quantiles))
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		eff, err = s.vector(gctx, promql.RouteResponses("route_response_total", sel, window))
		return
	})
	if actual {
		g.Go(func() (err error) {
			act, err = s.vector(gctx, promql.RouteResponses("route_actual_response_total", sel, window))
			return
		})
	}
	for i, q := range promql.Quantiles {
		g.Go(func() (err error) {
			latencies[i], err = s.vector(gctx, promql.RouteLatencyQuantile(q, sel, window))
			return
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	stats := map[routeKey]*vizapi.BasicStats{}
	get := func(m model.Metric, create bool) *vizapi.BasicStats {
		route := string(m[promql.LabelRoute])
		if route == "" {
			route = vizapi.DefaultRoute
		}
		authority, _, _ := strings.Cut(string(m[promql.LabelRouteDst]), ":")
		k := routeKey{route, authority}
		if stats[k] == nil && create {
			stats[k] = &vizapi.BasicStats{}
		}
		return stats[k]
	}
	for _, smp := range eff {
		st := get(smp.Metric, true)
		if smp.Metric[promql.LabelClassification] == "success" {
			st.SuccessCount += count(smp.Value)
		} else {
			st.FailureCount += count(smp.Value)
		}
	}
	for _, smp := range act {
		st := get(smp.Metric, true)
		if smp.Metric[promql.LabelClassification] == "success" {
			st.ActualSuccessCount += count(smp.Value)
		} else {
			st.ActualFailureCount += count(smp.Value)
		}
	}
	for i, vec := range latencies {
		for _, smp := range vec {
			st := get(smp.Metric, false)
			if st == nil {
				continue
			}
			setQuantile(st, i, latencyMs(smp.Value))
		}
	}
	return stats, nil
}

// gatewayRouteStats queries the outbound_{http,grpc}_route_* families for requests
// matching src (all clients when empty) to the named services of namespace ns, keyed by
// route name ("[DEFAULT]" for the default route) and service authority: effective
// counts from the route's request statuses, actual ones from its backends' responses
// (every attempt, retries included), latency from its request durations.
func (s *Server) gatewayRouteStats(ctx context.Context, src model.LabelSet, ns string, services []string, window string) (map[routeKey]*vizapi.BasicStats, error) {
	quoted := make([]string, len(services))
	for i, n := range services {
		quoted[i] = regexp.QuoteMeta(n)
	}
	sel := strings.TrimSuffix(src.String(), "}")
	if len(src) > 0 {
		sel += ", "
	}
	sel += fmt.Sprintf("parent_namespace=%q, parent_name=~%q}", ns, strings.Join(quoted, "|"))
	route := "parent_name, route_name, route_kind"
	stats := map[routeKey]*vizapi.BasicStats{}
	get := func(m model.Metric) *vizapi.BasicStats {
		name, kind := routeName(m)
		if kind == "" || name == defaultName {
			name = vizapi.DefaultRoute
		}
		k := routeKey{name, fmt.Sprintf("%s.%s.svc.%s", m["parent_name"], ns, s.clusterDomain())}
		if stats[k] == nil {
			stats[k] = &vizapi.BasicStats{}
		}
		return stats[k]
	}
	for _, proto := range []string{"http", "grpc"} {
		f, status := "outbound_"+proto+"_route_", "http_status, error"
		if proto == "grpc" {
			status = "grpc_status, error"
		}
		qs := []string{
			fmt.Sprintf("sum(increase(%srequest_statuses_total%s[%s])) by (%s, %s)", f, sel, window, route, status),
			fmt.Sprintf("sum(increase(%sbackend_response_statuses_total%s[%s])) by (%s, %s)", f, sel, window, route, status),
		}
		for _, q := range promql.Quantiles {
			qs = append(qs, fmt.Sprintf("histogram_quantile(%s, sum(irate(%srequest_duration_seconds_bucket%s[%s])) by (le, %s))", q, f, sel, window, route))
		}
		vecs, err := s.queries(ctx, qs...)
		if err != nil {
			return nil, err
		}
		for _, smp := range vecs[0] {
			st, n := get(smp.Metric), count(smp.Value)
			if failed(smp.Metric) {
				st.FailureCount += n
			} else {
				st.SuccessCount += n
			}
		}
		for _, smp := range vecs[1] {
			st, n := get(smp.Metric), count(smp.Value)
			if failed(smp.Metric) {
				st.ActualFailureCount += n
			} else {
				st.ActualSuccessCount += n
			}
		}
		for q, vec := range vecs[2:] {
			for _, smp := range vec {
				if !math.IsNaN(float64(smp.Value)) {
					setQuantile(get(smp.Metric), q, latencyMs(smp.Value*1000))
				}
			}
		}
	}
	for k, st := range stats {
		if st.SuccessCount+st.FailureCount == 0 {
			delete(stats, k)
		}
	}
	return stats, nil
}
