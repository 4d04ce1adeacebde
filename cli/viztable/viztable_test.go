package viztable

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/l5d-go/l5d/pkg/vizapi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got\n%s\nwant\n%s", name, got, want)
	}
}

var stats = &vizapi.StatSummaryOk{StatTables: []vizapi.StatTable{{PodGroup: vizapi.PodGroup{Rows: []vizapi.StatRow{
	{Resource: vizapi.Resource{Type: vizapi.Deployment, Namespace: "emojivoto", Name: "emoji"}, TimeWindow: "1m", MeshedPodCount: 1, RunningPodCount: 1,
		Stats:    &vizapi.BasicStats{SuccessCount: 114, FailureCount: 0, LatencyMsP50: 1, LatencyMsP95: 2, LatencyMsP99: 3},
		TCPStats: &vizapi.TCPStats{OpenConnections: 3, ReadBytesTotal: 6000, WriteBytesTotal: 12060}},
	{Resource: vizapi.Resource{Type: vizapi.Deployment, Namespace: "emojivoto", Name: "vote-bot"}, TimeWindow: "1m", MeshedPodCount: 0, RunningPodCount: 1},
	{Resource: vizapi.Resource{Type: vizapi.Deployment, Namespace: "emojivoto", Name: "web"}, TimeWindow: "1m", MeshedPodCount: 2, RunningPodCount: 2,
		Stats:    &vizapi.BasicStats{SuccessCount: 105, FailureCount: 15, LatencyMsP50: 4, LatencyMsP95: 18, LatencyMsP99: 37},
		TCPStats: &vizapi.TCPStats{OpenConnections: 2}},
}}}}}

// TestStat: NAME left-aligned, figures right-aligned, "-" without traffic; -A adds
// NAMESPACE, wide the byte rates; JSON carries Linkerd's keys.
func TestStat(t *testing.T) {
	for _, tc := range []struct {
		file string
		o    StatOptions
	}{
		{"stat.txt", StatOptions{Format: Table}},
		{"stat-wide.txt", StatOptions{Format: Wide}},
		{"stat-all-namespaces.txt", StatOptions{Format: Table, AllNamespaces: true}},
		{"stat.json", StatOptions{Format: JSON}},
	} {
		var b bytes.Buffer
		if err := WriteStat(&b, stats, tc.o); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.file, b.Bytes())
	}
	var b bytes.Buffer
	if err := WriteStat(&b, &vizapi.StatSummaryOk{}, StatOptions{Format: Table}); err != nil || b.String() != "No traffic found.\n" {
		t.Errorf("no rows: %q %v", b.String(), err)
	}
}

// TestStatAllAndPods: several tables (stat all) prefix names with their type; pods have
// STATUS.
func TestStatAllAndPods(t *testing.T) {
	ok := &vizapi.StatSummaryOk{StatTables: []vizapi.StatTable{
		{PodGroup: vizapi.PodGroup{Rows: stats.StatTables[0].PodGroup.Rows[:1]}},
		{PodGroup: vizapi.PodGroup{Rows: []vizapi.StatRow{{Resource: vizapi.Resource{Type: vizapi.Pod, Namespace: "emojivoto", Name: "emoji-6d66d87995-tvbqz"},
			TimeWindow: "1m", Status: "Running", MeshedPodCount: 1, RunningPodCount: 1}}}},
	}}
	var b bytes.Buffer
	if err := WriteStat(&b, ok, StatOptions{Format: Table, Prefix: true}); err != nil {
		t.Fatal(err)
	}
	golden(t, "stat-all.txt", b.Bytes())
}

var edges = &vizapi.EdgesOk{Edges: []vizapi.Edge{
	{Src: vizapi.Resource{Namespace: "linkerd-viz", Name: "prometheus"}, Dst: vizapi.Resource{Namespace: "emojivoto", Name: "web"},
		ClientID: "prometheus.linkerd-viz.serviceaccount.identity.linkerd.cluster.local"},
	{Src: vizapi.Resource{Namespace: "emojivoto", Name: "web"}, Dst: vizapi.Resource{Namespace: "emojivoto", Name: "emoji"},
		ClientID: "web.emojivoto.serviceaccount.identity.linkerd.cluster.local", ServerID: "emoji.emojivoto.serviceaccount.identity.linkerd.cluster.local"},
	{Src: vizapi.Resource{Namespace: "emojivoto", Name: "vote-bot"}, Dst: vizapi.Resource{Namespace: "emojivoto", Name: "web"},
		NoIdentityMsg: "no_tls_from_remote"},
}}

func TestEdges(t *testing.T) {
	for _, tc := range []struct{ file, format string }{{"edges.txt", Table}, {"edges-wide.txt", Wide}, {"edges.json", JSON}} {
		var b bytes.Buffer
		if err := WriteEdges(&b, edges, tc.format); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.file, b.Bytes())
	}
}

var routes = &vizapi.TopRoutesOk{Routes: []vizapi.RouteTable{
	{Resource: "deployment/books", Rows: []vizapi.RouteRow{
		{Route: "GET /authors/{id}.json", Authority: "authors.booksapp.svc.cluster.local", TimeWindow: "1m",
			Stats: &vizapi.BasicStats{SuccessCount: 60, FailureCount: 0, ActualSuccessCount: 60, ActualFailureCount: 58, LatencyMsP50: 9, LatencyMsP95: 29, LatencyMsP99: 38}},
		{Route: "DELETE /authors/{id}.json", Authority: "authors.booksapp.svc.cluster.local", TimeWindow: "1m"},
		{Route: "[DEFAULT]", Authority: "authors.booksapp.svc.cluster.local", TimeWindow: "1m"},
	}},
}}

func TestRoutes(t *testing.T) {
	for _, tc := range []struct{ file, format string }{{"routes.txt", Table}, {"routes-wide.txt", Wide}, {"routes.json", JSON}} {
		var b bytes.Buffer
		if err := WriteRoutes(&b, routes, tc.format); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.file, b.Bytes())
	}
	two := &vizapi.TopRoutesOk{Routes: append([]vizapi.RouteTable{{Resource: "deployment/authors", Rows: routes.Routes[0].Rows[2:]}}, routes.Routes...)}
	var b bytes.Buffer
	if err := WriteRoutes(&b, two, Table); err != nil {
		t.Fatal(err)
	}
	golden(t, "routes-several.txt", b.Bytes())
}

func TestCheckFormat(t *testing.T) {
	if err := CheckFormat("yaml"); err == nil || err.Error() != `--output "yaml": want table, wide or json` {
		t.Errorf("CheckFormat(yaml) = %v", err)
	}
}

func f64(v float64) *float64 { return &v }

func TestStatInboundOutbound(t *testing.T) {
	in := &vizapi.StatInboundResponse{TimeWindow: "1m", Rows: []vizapi.InboundRow{
		{Name: "web", Server: "[default]", Port: "4191", Route: "[default]", SuccessCount: 12},
		{Name: "web", Server: "web-http", Port: "8080", Route: "items", RouteType: "HTTPRoute", SuccessCount: 36, FailureCount: 4,
			Latencies: vizapi.Latencies{P50: f64(10), P95: f64(75), P99: f64(95)}},
	}}
	out := &vizapi.StatOutboundResponse{TimeWindow: "1m", Rows: []vizapi.OutboundRow{
		{Name: "web", Service: "catalog", Port: "8080", Route: "catalog-route", RouteType: "HTTPRoute", SuccessCount: 24, FailureCount: 8, Timeouts: 8, Retries: 4,
			Latencies: vizapi.Latencies{P50: f64(5), P95: f64(9.5), P99: f64(9.9)},
			Backends: []vizapi.OutboundBackend{
				{Name: "catalog", Port: "8080", SuccessCount: 20, Latencies: vizapi.Latencies{P50: f64(1), P95: f64(1.9), P99: f64(1.98)}},
				{Name: "catalog-v2", Port: "8080", FailureCount: 4},
			}},
		{Name: "web", Service: "ratings", Port: "9090", Route: "[default]", SuccessCount: 16, Backends: []vizapi.OutboundBackend{{Name: "ratings", Port: "9090", SuccessCount: 16}}},
	}}
	for _, format := range []string{Table, JSON} {
		var b bytes.Buffer
		if err := WriteStatInbound(&b, in, format); err != nil {
			t.Fatal(err)
		}
		golden(t, "stat-inbound."+map[string]string{Table: "txt", JSON: "json"}[format], b.Bytes())
		b.Reset()
		if err := WriteStatOutbound(&b, out, format); err != nil {
			t.Fatal(err)
		}
		golden(t, "stat-outbound."+map[string]string{Table: "txt", JSON: "json"}[format], b.Bytes())
	}
}
