package metricsapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/pkg/vizapi"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/viz/internal/promtest"
	"github.com/l5d-go/l5d/viz/metricsapi"
	"github.com/l5d-go/l5d/viz/metricsapi/cluster"
)

// latencyBounds are the proxy's response_latency_ms bucket bounds.
var latencyBounds = []string{"1", "2", "3", "4", "5", "10", "20", "30", "40", "50", "100", "200", "300", "400", "500",
	"1000", "2000", "3000", "4000", "5000", "10000", "20000", "30000", "40000", "50000", "+Inf"}

// syntheticProxy renders the exposition text of one meshed pod of workload w (of n in
// namespace ns) at scrape k: inbound traffic from fanout clients, outbound traffic to
// fanout other workloads (each with a ServiceProfile route), TCP counters, about 100
// series per fanout.
func syntheticProxy(ns string, w, n, fanout, k int) string {
	var b strings.Builder
	hist := func(family, labels string, perScrape int) {
		for i, le := range latencyBounds {
			fmt.Fprintf(&b, "%s_bucket{%s,le=%q} %d\n", family, labels, le, perScrape*k*min(i+1, 10)/10)
		}
		fmt.Fprintf(&b, "%s_count{%s} %d\n%s_sum{%s} %d\n", family, labels, perScrape*k, family, labels, 7*perScrape*k)
	}
	for f := range fanout {
		client := fmt.Sprintf("wl-%d.%s.serviceaccount.identity.linkerd.cluster.local", (w+f+1)%n, ns)
		in := fmt.Sprintf(`direction="inbound",authority="wl-%d.%s.svc.cluster.local:8080",tls="true",client_id=%q`, w, ns, client)
		fmt.Fprintf(&b, "request_total{%s} %d\n", in, 10*k)
		fmt.Fprintf(&b, "response_total{%s,status_code=\"200\",classification=\"success\"} %d\n", in, 9*k)
		fmt.Fprintf(&b, "response_total{%s,status_code=\"500\",classification=\"failure\"} %d\n", in, k)
		hist("response_latency_ms", in, 10)
		dst := (w + f + 1) % n
		out := fmt.Sprintf(`direction="outbound",authority="wl-%d.%s.svc.cluster.local:8080",dst_namespace=%q,dst_deployment="wl-%d",dst_service="wl-%d",tls="true",server_id="wl-%d.%s.serviceaccount.identity.linkerd.cluster.local"`, dst, ns, ns, dst, dst, dst, ns)
		fmt.Fprintf(&b, "request_total{%s} %d\n", out, 5*k)
		fmt.Fprintf(&b, "response_total{%s,status_code=\"200\",classification=\"success\"} %d\n", out, 5*k)
		hist("response_latency_ms", out, 5)
		rt := fmt.Sprintf(`direction="outbound",dst="wl-%d.%s.svc.cluster.local:8080",rt_route="GET /items"`, dst, ns)
		fmt.Fprintf(&b, "route_response_total{%s,classification=\"success\"} %d\n", rt, 5*k)
		fmt.Fprintf(&b, "route_actual_response_total{%s,classification=\"success\"} %d\n", rt, 5*k)
		hist("route_response_latency_ms", rt, 5)
		for _, dir := range []string{in + `,peer="src"`, out + `,peer="dst"`} {
			fmt.Fprintf(&b, "tcp_open_total{%s} %d\ntcp_open_connections{%s} 1\ntcp_read_bytes_total{%s} %d\ntcp_write_bytes_total{%s} %d\n",
				dir, k, dir, dir, 900*k, dir, 4000*k)
		}
	}
	return b.String()
}

// loadNamespace makes a namespace of n meshed deployments (one running pod each) and a
// Prometheus holding scrapes of their synthetic proxies; it returns a metrics-api client.
func loadNamespace(b *testing.B, n, fanout, scrapes int) (string, *vizapi.Client, *promtest.Prometheus) {
	c := kube.Shared(b)
	ns := c.Namespace(b)
	ctx := context.Background()
	for i := range n {
		if _, err := c.Client().AppsV1().Deployments(ns).Create(ctx, deployment(fmt.Sprintf("wl-%d", i), true), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	pods := map[string]string{}
	deadline := time.Now().Add(5 * time.Minute)
	for len(pods) < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d pods within 5m", len(pods), n)
		}
		l, err := c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range l.Items {
			if _, ok := pods[p.Labels["app"]]; !ok {
				c.SetPodStatus(b, ns, p.Name, kube.PodStatus{IPs: []string{"10.244.9.1"}, Ready: true})
				pods[p.Labels["app"]] = p.Name
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	targets := make([]promtest.Target, n)
	for i := range n {
		w := fmt.Sprintf("wl-%d", i)
		targets[i] = promtest.Target{Labels: map[string]string{"namespace": ns, "pod": pods[w], "deployment": w},
			Text: func(k int) string { return syntheticProxy(ns, i, n, fanout, k) }}
	}
	prom := promtest.Run(b, promtest.Options{Targets: targets, Scrapes: scrapes})
	cache := cluster.New(c.Client(), nil) // no ServiceProfiles: stat does not read them
	cctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	if err := cache.Start(cctx, time.Minute); err != nil {
		b.Fatal(err)
	}
	for {
		objs, err := cache.List(vizapi.Resource{Type: vizapi.Deployment, Namespace: ns}, "")
		running := 0
		for _, o := range objs {
			running += int(o.Running)
		}
		if err == nil && running == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("cache: %d of %d running pods", running, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv := &metricsapi.Server{Prom: prom.API, Cache: cache, Now: func() time.Time { return prom.End }}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	return ns, &vizapi.Client{BaseURL: hs.URL}, prom
}

// BenchmarkStatSummary100Workloads: `linkerd viz stat deploy` of a namespace of 100
// meshed deployments (about 100 series each) through the HTTP API, against the real
// Prometheus; reports the median and p99 latency of the calls.
func BenchmarkStatSummary100Workloads(b *testing.B) {
	ns, client, _ := loadNamespace(b, 100, 1, 9)
	req := &vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: vizapi.Resource{Type: vizapi.Deployment, Namespace: ns}}, TCPStats: true}
	ctx := context.Background()
	// Check once that every row has its figures.
	rsp, err := client.StatSummary(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	if rows := rsp.Ok.StatTables[0].PodGroup.Rows; len(rows) != 100 || rows[0].Stats == nil || rows[0].Stats.SuccessCount != 36 {
		b.Fatalf("unexpected answer: %d rows, first %+v", len(rows), rows[0])
	}
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := client.StatSummary(ctx, req); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[min(len(times)-1, len(times)*99/100)].Microseconds())/1000, "p99-ms")
}

// BenchmarkPrometheusRSSDemoHour: the Prometheus server's resident memory after holding
// an hour of the demo's proxies (10 meshed pods, about 200 series each, scraped every 15s:
// 240 scrapes), then answering a stat query over them. Reports RSS in MB.
func BenchmarkPrometheusRSSDemoHour(b *testing.B) {
	ns, client, prom := loadNamespace(b, 10, 2, 240)
	req := &vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: vizapi.Resource{Type: vizapi.Deployment, Namespace: ns}}, TimeWindow: "1h"}
	for b.Loop() {
		if _, err := client.StatSummary(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	rss, err := prom.RSS()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(rss)/(1<<20), "prometheus-RSS-MB")
}
