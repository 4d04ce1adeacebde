package metricsapi

import (
	"context"
	"math"

	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/pkg/vizapi"
	"github.com/l5d-go/l5d/viz/metricsapi/cluster"
	"github.com/l5d-go/l5d/viz/metricsapi/promql"
)

// key names a resource in query results: its namespace and name.
type key struct{ ns, name string }

// keyOf reads a result's resource from its group-by labels (namespace label, then kind
// label; a single label is the name).
func keyOf(m model.Metric, groupBy model.LabelNames) key {
	switch len(groupBy) {
	case 1:
		return key{name: string(m[groupBy[0]])}
	case 2:
		return key{ns: string(m[groupBy[0]]), name: string(m[groupBy[1]])}
	}
	return key{}
}

// StatSummary answers a StatSummaryRequest: one table per resource type (every
// meshable type for "all"), a row per resource with its pod counts and, when it had
// traffic in the window, its figures.
func (s *Server) StatSummary(ctx context.Context, req *vizapi.StatSummaryRequest) (*vizapi.StatSummaryResponse, error) {
	sel := req.Selector.Resource
	if err := validResource("selector", &sel, true); err != nil {
		return nil, err
	}
	for _, r := range []*vizapi.Resource{req.ToResource, req.FromResource} {
		if r != nil {
			if err := validResource("to/from resource", r, false); err != nil {
				return nil, err
			}
		}
	}
	if req.ToResource != nil && req.FromResource != nil {
		return nil, badRequest("at most one of toResource and fromResource may be set")
	}
	window := req.TimeWindow
	if window == "" {
		window = vizapi.DefaultTimeWindow
	}
	if _, err := vizapi.ParseWindow(window); err != nil {
		return nil, badRequest("%v", err)
	}
	types := []string{sel.Type}
	if sel.Type == vizapi.All {
		types = vizapi.StatAllTypes
	}
	ok := &vizapi.StatSummaryOk{}
	for _, t := range types {
		r := sel
		r.Type = t
		rows, err := s.statTable(ctx, r, req, window)
		if err != nil {
			return nil, err
		}
		if sel.Type == vizapi.All && len(rows) == 0 {
			continue
		}
		ok.StatTables = append(ok.StatTables, vizapi.StatTable{PodGroup: vizapi.PodGroup{Rows: rows}})
	}
	return &vizapi.StatSummaryResponse{Ok: ok}, nil
}

func (s *Server) statTable(ctx context.Context, r vizapi.Resource, req *vizapi.StatSummaryRequest, window string) ([]vizapi.StatRow, error) {
	objs, err := s.Cache.List(r, req.Selector.LabelSelector)
	if err != nil {
		if r.Name != "" {
			return nil, badRequest("%v", err)
		}
		return nil, err
	}
	var stats map[key]*vizapi.BasicStats
	var tcp map[key]*vizapi.TCPStats
	if !req.SkipStats {
		sel, err := promql.StatSelection(r, req.ToResource, req.FromResource)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		if stats, tcp, err = s.stats(ctx, sel, window, req.TCPStats); err != nil {
			return nil, err
		}
	}
	row := func(res vizapi.Resource, o cluster.Object) vizapi.StatRow {
		k := key{ns: res.Namespace, name: res.Name}
		return vizapi.StatRow{Resource: res, TimeWindow: window, Status: o.Status, MeshedPodCount: o.Meshed,
			RunningPodCount: o.Running, FailedPodCount: o.Failed, Stats: stats[k], TCPStats: tcp[k]}
	}
	var rows []vizapi.StatRow
	if r.Type == vizapi.Authority {
		// Authorities are not Kubernetes objects: the rows are those with traffic.
		for k := range stats {
			if k.name != "" && (r.Name == "" || k.name == r.Name) {
				rows = append(rows, row(vizapi.Resource{Type: vizapi.Authority, Namespace: k.ns, Name: k.name}, cluster.Object{}))
			}
		}
		sortRows(rows)
		return rows, nil
	}
	for _, o := range objs {
		rows = append(rows, row(o.Resource, o))
	}
	return rows, nil
}

// stats queries responses, latency quantiles and, with tcpStats, connection figures of
// a selection, keyed by resource.
func (s *Server) stats(ctx context.Context, sel promql.Selection, window string, tcpStats bool) (map[key]*vizapi.BasicStats, map[key]*vizapi.TCPStats, error) {
	var (
		responses model.Vector
		latencies = make([]model.Vector, len(promql.Quantiles))
		tcpVecs   = make([]model.Vector, 3)
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { responses, err = s.vector(gctx, promql.Responses(sel, window)); return })
	for i, q := range promql.Quantiles {
		g.Go(func() (err error) { latencies[i], err = s.vector(gctx, promql.LatencyQuantile(q, sel, window)); return })
	}
	if tcpStats {
		for i, q := range []string{promql.TCPOpenConnections(sel), promql.TCPReadBytes(sel, window), promql.TCPWriteBytes(sel, window)} {
			g.Go(func() (err error) { tcpVecs[i], err = s.vector(gctx, q); return })
		}
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	stats := map[key]*vizapi.BasicStats{}
	for _, smp := range responses {
		k := keyOf(smp.Metric, sel.GroupBy)
		st := stats[k]
		if st == nil {
			st = &vizapi.BasicStats{}
			stats[k] = st
		}
		n := count(smp.Value)
		if smp.Metric[promql.LabelClassification] == "success" {
			st.SuccessCount += n
		} else {
			st.FailureCount += n
		}
	}
	for i, vec := range latencies {
		for _, smp := range vec {
			st := stats[keyOf(smp.Metric, sel.GroupBy)]
			if st == nil {
				continue
			}
			setQuantile(st, i, latencyMs(smp.Value))
		}
	}
	var tcp map[key]*vizapi.TCPStats
	if tcpStats {
		tcp = map[key]*vizapi.TCPStats{}
		for i, vec := range tcpVecs {
			for _, smp := range vec {
				k := keyOf(smp.Metric, sel.GroupBy)
				t := tcp[k]
				if t == nil {
					t = &vizapi.TCPStats{}
					tcp[k] = t
				}
				switch i {
				case 0:
					t.OpenConnections = count(smp.Value)
				case 1:
					t.ReadBytesTotal = count(smp.Value)
				case 2:
					t.WriteBytesTotal = count(smp.Value)
				}
			}
		}
	}
	return stats, tcp, nil
}

// latencyMs rounds a histogram_quantile result (milliseconds) to whole milliseconds,
// 0 for NaN (no observations).
func latencyMs(v model.SampleValue) uint64 {
	f := float64(v)
	if math.IsNaN(f) || f < 0 {
		return 0
	}
	if math.IsInf(f, 1) {
		return math.MaxUint64
	}
	return uint64(math.Round(f))
}

// setQuantile sets the i-th of promql.Quantiles (p50, p95, p99) of st.
func setQuantile(st *vizapi.BasicStats, i int, ms uint64) {
	switch i {
	case 0:
		st.LatencyMsP50 = ms
	case 1:
		st.LatencyMsP95 = ms
	case 2:
		st.LatencyMsP99 = ms
	}
}
