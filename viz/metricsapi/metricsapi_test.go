package metricsapi_test

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/vizapi"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/viz/internal/promtest"
	"github.com/l5d-go/l5d/viz/metricsapi"
	"github.com/l5d-go/l5d/viz/metricsapi/cluster"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{ControllerManager: true}) }

// fixture is a namespace with deployments web and catalog (meshed) and legacy (not
// meshed), services web and catalog, a ServiceProfile for catalog, and a real
// Prometheus holding proxy series for their pods.
type fixture struct {
	ns     string
	client *vizapi.Client
	pods   map[string]string // deployment -> its pod
	// metrics is the server's registry.
	metrics *prometheus.Registry
}

func deployment(name string, meshed bool) *appsv1.Deployment {
	one := int32(1)
	containers := []corev1.Container{{Name: "app", Image: "app"}}
	if meshed {
		containers = append(containers, corev1.Container{Name: inject.ProxyContainerName, Image: "proxy"})
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: containers},
			},
		},
	}
}

const spCatalog = `apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata:
  name: catalog.%s.svc.cluster.local
spec:
  routes:
  - name: GET /items
    condition: {method: GET, pathRegex: /items}
  - name: POST /items
    condition: {method: POST, pathRegex: /items}
`

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := kube.Shared(t)
	crd, err := os.ReadFile("../../deploy/crds/serviceprofile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "", string(crd))
	c.WaitCRD(t, "serviceprofiles.linkerd.io")
	ns := c.Namespace(t)
	ctx := context.Background()
	for _, d := range []*appsv1.Deployment{deployment("web", true), deployment("catalog", true), deployment("legacy", false)} {
		if _, err := c.Client().AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"web", "catalog"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 8080}}}}
		if _, err := c.Client().CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.Apply(t, ns, fmt.Sprintf(spCatalog, ns))
	// The controller manager makes the pods; stand in for the kubelet to run them.
	pods := map[string]string{}
	deadline := time.Now().Add(2 * time.Minute)
	for len(pods) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("pods of the deployments not created within 2m: have %v", pods)
		}
		l, err := c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Items {
			if _, ok := pods[p.Labels["app"]]; !ok {
				c.SetPodStatus(t, ns, p.Name, kube.PodStatus{IPs: []string{"10.244.9.1"}, Ready: true})
				pods[p.Labels["app"]] = p.Name
			}
		}
		time.Sleep(50 * time.Millisecond)
	}

	id := func(sa, ns string) string { return sa + "." + ns + ".serviceaccount.identity.linkerd.cluster.local" }
	const (
		itemsRoute   = `srv_kind="Server",srv_name="web-http",target_port="8080",route_kind="HTTPRoute",route_name="items"`
		defaultRoute = `srv_kind="Server",srv_name="web-http",target_port="8080",route_kind="default",route_name="default"`
	)
	catalogRoute := fmt.Sprintf(`parent_group="core",parent_kind="Service",parent_name="catalog",parent_namespace=%q,parent_port="8080",route_group="gateway.networking.k8s.io",route_kind="HTTPRoute",route_name="catalog-route",route_namespace=%q`, ns, ns)
	webText := func(n int) string {
		return strings.Join([]string{
			// Inbound: 9 successes and 1 failure per 15s from catalog... and prometheus.
			// on Server web-http: the successes on its HTTPRoute items, the failures on the
			// default route (which observed no latency).
			fmt.Sprintf(`response_total{direction="inbound",tls="true",client_id=%q,%s,status_code="200",classification="success"} %d`, id("prometheus", "linkerd-viz"), itemsRoute, 9*n),
			fmt.Sprintf(`response_total{direction="inbound",tls="true",client_id=%q,%s,status_code="500",classification="failure"} %d`, id("prometheus", "linkerd-viz"), defaultRoute, n),
			fmt.Sprintf(`response_latency_ms_bucket{direction="inbound",%s,le="10"} %d`, itemsRoute, 5*n),
			fmt.Sprintf(`response_latency_ms_bucket{direction="inbound",%s,le="50"} %d`, itemsRoute, 9*n),
			fmt.Sprintf(`response_latency_ms_bucket{direction="inbound",%s,le="100"} %d`, itemsRoute, 10*n),
			fmt.Sprintf(`response_latency_ms_bucket{direction="inbound",%s,le="+Inf"} %d`, itemsRoute, 10*n),
			// Gateway API route metrics: HTTPRoute catalog-route (to Service catalog:8080)
			// answered 6 and timed out 2 per 15s, with 1 retry; its backends catalog and
			// catalog-v2 answered 5 and failed 1; gRPC to ratings:9090 on its default route.
			fmt.Sprintf(`outbound_http_route_request_statuses_total{%s,http_status="200",error=""} %d`, catalogRoute, 6*n),
			fmt.Sprintf(`outbound_http_route_request_statuses_total{%s,http_status="",error="REQUEST_TIMEOUT"} %d`, catalogRoute, 2*n),
			fmt.Sprintf(`outbound_http_route_retry_requests_total{%s} %d`, catalogRoute, n),
			fmt.Sprintf(`outbound_http_route_request_duration_seconds_bucket{%s,le="0.01"} %d`, catalogRoute, 8*n),
			fmt.Sprintf(`outbound_http_route_request_duration_seconds_bucket{%s,le="+Inf"} %d`, catalogRoute, 8*n),
			fmt.Sprintf(`outbound_http_route_backend_response_statuses_total{%s,backend_kind="Service",backend_name="catalog",backend_namespace=%q,backend_port="8080",http_status="200",error=""} %d`, catalogRoute, ns, 5*n),
			fmt.Sprintf(`outbound_http_route_backend_response_statuses_total{%s,backend_kind="Service",backend_name="catalog-v2",backend_namespace=%q,backend_port="8080",http_status="503",error=""} %d`, catalogRoute, ns, n),
			fmt.Sprintf(`outbound_http_route_backend_response_duration_seconds_bucket{%s,backend_name="catalog",backend_port="8080",le="0.002"} %d`, catalogRoute, 5*n),
			fmt.Sprintf(`outbound_http_route_backend_response_duration_seconds_bucket{%s,backend_name="catalog",backend_port="8080",le="+Inf"} %d`, catalogRoute, 5*n),
			fmt.Sprintf(`outbound_grpc_route_request_statuses_total{parent_kind="Service",parent_name="ratings",parent_namespace=%q,parent_port="9090",route_kind="default",route_name="default",grpc_status="OK",error=""} %d`, ns, 4*n),
			// Inbound connections from clients (peer="src"), and the proxy's own on to the
			// application (peer="dst"), which the stats must not count a second time.
			`tcp_open_connections{direction="inbound",peer="src"} 2`,
			fmt.Sprintf(`tcp_read_bytes_total{direction="inbound",peer="src"} %d`, 1500*n),
			fmt.Sprintf(`tcp_write_bytes_total{direction="inbound",peer="src"} %d`, 3000*n),
			`tcp_open_connections{direction="inbound",peer="dst"} 2`,
			fmt.Sprintf(`tcp_read_bytes_total{direction="inbound",peer="dst"} %d`, 3000*n),
			fmt.Sprintf(`tcp_write_bytes_total{direction="inbound",peer="dst"} %d`, 1500*n),
			// Outbound to catalog: 4 per 15s, secured.
			fmt.Sprintf(`response_total{direction="outbound",dst_namespace=%q,dst_deployment="catalog",dst_service="catalog",dst_pod=%q,dst_serviceaccount="default",tls="true",server_id=%q,status_code="200",classification="success"} %d`, ns, pods["catalog"], id("default", ns), 4*n),
			fmt.Sprintf(`response_latency_ms_bucket{direction="outbound",dst_namespace=%q,dst_deployment="catalog",dst_service="catalog",le="5"} %d`, ns, 4*n),
			fmt.Sprintf(`response_latency_ms_bucket{direction="outbound",dst_namespace=%q,dst_deployment="catalog",dst_service="catalog",le="+Inf"} %d`, ns, 4*n),
			// Its ServiceProfile route GET /items: 3 successes, 1 failure per 15s as web saw
			// them; retries made it 3 and 3 on the wire.
			fmt.Sprintf(`route_response_total{direction="outbound",dst="catalog.%s.svc.cluster.local:8080",rt_route="GET /items",classification="success"} %d`, ns, 3*n),
			fmt.Sprintf(`route_response_total{direction="outbound",dst="catalog.%s.svc.cluster.local:8080",rt_route="GET /items",classification="failure"} %d`, ns, n),
			fmt.Sprintf(`route_actual_response_total{direction="outbound",dst="catalog.%s.svc.cluster.local:8080",rt_route="GET /items",classification="success"} %d`, ns, 3*n),
			fmt.Sprintf(`route_actual_response_total{direction="outbound",dst="catalog.%s.svc.cluster.local:8080",rt_route="GET /items",classification="failure"} %d`, ns, 3*n),
			fmt.Sprintf(`route_response_latency_ms_bucket{direction="outbound",dst="catalog.%s.svc.cluster.local:8080",rt_route="GET /items",le="20"} %d`, ns, 4*n),
			fmt.Sprintf(`route_response_latency_ms_bucket{direction="outbound",dst="catalog.%s.svc.cluster.local:8080",rt_route="GET /items",le="+Inf"} %d`, ns, 4*n),
		}, "\n")
	}
	catalogText := func(n int) string {
		return fmt.Sprintf(`response_total{direction="inbound",authority="catalog.%s.svc.cluster.local:8080",tls="true",client_id=%q,status_code="200",classification="success"} %d`, ns, id("default", ns), 4*n)
	}
	prom := promtest.Run(t, promtest.Options{Targets: []promtest.Target{
		{Labels: map[string]string{"namespace": ns, "pod": pods["web"], "deployment": "web"}, Text: webText},
		{Labels: map[string]string{"namespace": ns, "pod": pods["catalog"], "deployment": "catalog"}, Text: catalogText},
	}})

	cache := cluster.New(c.Client(), c.Dynamic())
	cctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := cache.Start(cctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv := &metricsapi.Server{Prom: prom.API, Cache: cache, Now: func() time.Time { return prom.End }, Metrics: reg}
	// The cache may not have seen the pods' Running status yet: wait for it.
	deadline = time.Now().Add(time.Minute)
	for {
		objs, err := cache.List(vizapi.Resource{Type: vizapi.Deployment, Namespace: ns}, "")
		running := 0
		for _, o := range objs {
			running += int(o.Running)
		}
		if err == nil && running == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache: %d running pods, err %v", running, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &fixture{ns: ns, client: &vizapi.Client{BaseURL: hs.URL}, pods: pods, metrics: reg}
}

// The outbound latency buckets hold 4 observations per scrape, all <= 5ms: the median
// interpolates to 2.5ms (3 rounded), p95 and p99 to 4.75 and 4.95ms (5).

// lat renders latencies as p50/p95/p99 (ms, up to 2 decimals), "-" without any.
func lat(l vizapi.Latencies) string {
	if l.P50 == nil {
		return "-"
	}
	f := func(p *float64) string { return strconv.FormatFloat(math.Round(*p*100)/100, 'f', -1, 64) }
	return f(l.P50) + "/" + f(l.P95) + "/" + f(l.P99)
}

// statRows renders a StatSummary answer's rows as "ns/name meshed/running success
// failure p50 p95 p99 [conns read write]", "-" for rows without traffic.
func statRows(rsp *vizapi.StatSummaryResponse) []string {
	var out []string
	for _, t := range rsp.Ok.StatTables {
		for _, r := range t.PodGroup.Rows {
			s := fmt.Sprintf("%s/%s/%s %d/%d", r.Resource.Type, r.Resource.Namespace, r.Resource.Name, r.MeshedPodCount, r.RunningPodCount)
			if st := r.Stats; st != nil {
				s += fmt.Sprintf(" %d %d %d %d %d", st.SuccessCount, st.FailureCount, st.LatencyMsP50, st.LatencyMsP95, st.LatencyMsP99)
			} else {
				s += " -"
			}
			if tc := r.TCPStats; tc != nil {
				s += fmt.Sprintf(" tcp %d %d %d", tc.OpenConnections, tc.ReadBytesTotal, tc.WriteBytesTotal)
			}
			out = append(out, s)
		}
	}
	return out
}

// TestAgainstPrometheus checks the PromQL metrics-api builds, and what it makes of the
// answers, against the real Prometheus holding known series: every counter grows by a
// fixed amount per 15s scrape, so a 1m window holds four times that.
func TestAgainstPrometheus(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ns := f.ns
	res := func(typ, name string) vizapi.Resource { return vizapi.Resource{Type: typ, Namespace: ns, Name: name} }
	ptr := func(r vizapi.Resource) *vizapi.Resource { return &r }

	t.Run("StatSummary", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			req  vizapi.StatSummaryRequest
			want []string
		}{{
			name: "deployments: inbound traffic, meshed counts",
			req:  vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "")}, TCPStats: true},
			want: []string{
				fmt.Sprintf("deployment/%s/catalog 1/1 16 0 0 0 0", ns),
				fmt.Sprintf("deployment/%s/legacy 0/1 -", ns),
				// 36 of 40 succeeded; latency buckets 5 <=10ms, 4 <=50ms, 1 <=100ms.
				fmt.Sprintf("deployment/%s/web 1/1 36 4 10 75 95 tcp 2 6000 12000", ns),
			},
		}, {
			name: "one deployment",
			req:  vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "web")}},
			want: []string{fmt.Sprintf("deployment/%s/web 1/1 36 4 10 75 95", ns)},
		}, {
			name: "label selector",
			req:  vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, ""), LabelSelector: "nothing=here"}},
			want: nil,
		}, {
			name: "services: seen from their clients",
			req:  vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Service, "")}},
			want: []string{fmt.Sprintf("service/%s/catalog 1/1 16 0 3 5 5", ns), fmt.Sprintf("service/%s/web 1/1 -", ns)},
		}, {
			name: "--to: web's requests to catalog",
			req:  vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "web")}, ToResource: ptr(res(vizapi.Deployment, "catalog"))},
			want: []string{fmt.Sprintf("deployment/%s/web 1/1 16 0 3 5 5", ns)},
		}, {
			name: "--to narrows: web sent nothing to legacy",
			req:  vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "web")}, ToResource: ptr(res(vizapi.Deployment, "legacy"))},
			want: []string{fmt.Sprintf("deployment/%s/web 1/1 -", ns)},
		}, {
			name: "--from: requests of web to each deployment",
			req:  vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "")}, FromResource: ptr(res(vizapi.Deployment, "web"))},
			want: []string{fmt.Sprintf("deployment/%s/catalog 1/1 16 0 3 5 5", ns), fmt.Sprintf("deployment/%s/legacy 0/1 -", ns), fmt.Sprintf("deployment/%s/web 1/1 -", ns)},
		}, {
			name: "namespace",
			req:  vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: vizapi.Resource{Type: vizapi.Namespace, Name: ns}}},
			want: []string{fmt.Sprintf("namespace//%s 2/3 52 4 10 75 95", ns)},
		}, {
			name: "pods",
			req:  vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Pod, f.pods["catalog"])}},
			want: []string{fmt.Sprintf("pod/%s/%s 1/1 16 0 0 0 0", ns, f.pods["catalog"])},
		}, {
			name: "authorities: those with traffic",
			req:  vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Authority, "")}},
			want: []string{fmt.Sprintf("authority/%s/catalog.%s.svc.cluster.local:8080 0/0 16 0 0 0 0", ns, ns)},
		}, {
			name: "skip stats",
			req:  vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "web")}, SkipStats: true},
			want: []string{fmt.Sprintf("deployment/%s/web 1/1 -", ns)},
		}} {
			t.Run(tc.name, func(t *testing.T) {
				rsp, err := f.client.StatSummary(ctx, &tc.req)
				if err != nil {
					t.Fatal(err)
				}
				if got := statRows(rsp); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
					t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
				}
			})
		}
	})

	t.Run("StatSummary all", func(t *testing.T) {
		rsp, err := f.client.StatSummary(ctx, &vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.All, "")}})
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, tb := range rsp.Ok.StatTables {
			types = append(types, tb.PodGroup.Rows[0].Resource.Type)
		}
		if got := strings.Join(types, ","); got != "deployment,pod,service,authority,replicaset" {
			t.Errorf("tables of all: %s", got)
		}
	})

	t.Run("Edges", func(t *testing.T) {
		rsp, err := f.client.Edges(ctx, &vizapi.EdgesRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "")}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range rsp.Ok.Edges {
			got = append(got, fmt.Sprintf("%s/%s -> %s/%s client=%s server=%s msg=%s", e.Src.Namespace, e.Src.Name, e.Dst.Namespace, e.Dst.Name, e.ClientID, e.ServerID, e.NoIdentityMsg))
		}
		want := []string{
			fmt.Sprintf("linkerd-viz/prometheus -> %s/web client=prometheus.linkerd-viz.serviceaccount.identity.linkerd.cluster.local server= msg=", ns),
			fmt.Sprintf("%s/web -> %s/catalog client=default.%s.serviceaccount.identity.linkerd.cluster.local server=default.%s.serviceaccount.identity.linkerd.cluster.local msg=", ns, ns, ns, ns),
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("TopRoutes", func(t *testing.T) {
		routes := func(req vizapi.TopRoutesRequest) string {
			t.Helper()
			rsp, err := f.client.TopRoutes(ctx, &req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tb := range rsp.Ok.Routes {
				for _, r := range tb.Rows {
					s := fmt.Sprintf("%s %s %s", tb.Resource, r.Route, r.Authority)
					if st := r.Stats; st != nil {
						s += fmt.Sprintf(" %d %d actual %d %d p50 %d", st.SuccessCount, st.FailureCount, st.ActualSuccessCount, st.ActualFailureCount, st.LatencyMsP50)
					} else {
						s += " -"
					}
					got = append(got, s)
				}
			}
			return strings.Join(got, "\n")
		}
		auth := "catalog." + ns + ".svc.cluster.local"
		want := strings.Join([]string{
			"deployment/web GET /items " + auth + " 12 4 actual 12 12 p50 10",
			"deployment/web POST /items " + auth + " -",
			"deployment/web catalog-route " + auth + " 24 8 actual 20 4 p50 5",
			"deployment/web [DEFAULT] " + auth + " -",
		}, "\n")
		if got := routes(vizapi.TopRoutesRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "web")}, ToResource: ptr(res(vizapi.Service, "catalog"))}); got != want {
			t.Errorf("web --to svc/catalog: got\n%s\nwant\n%s", got, want)
		}
		// Without --to: catalog's routes as its clients saw them (the proxies export no
		// inbound route series here), effective only for the ServiceProfile's; the
		// HTTPRoute's actual counts are its backends' responses.
		want = strings.Join([]string{
			"deployment/catalog GET /items " + auth + " 12 4 actual 0 0 p50 10",
			"deployment/catalog POST /items " + auth + " -",
			"deployment/catalog catalog-route " + auth + " 24 8 actual 20 4 p50 5",
			"deployment/catalog [DEFAULT] " + auth + " -",
		}, "\n")
		if got := routes(vizapi.TopRoutesRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "catalog")}}); got != want {
			t.Errorf("catalog: got\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("StatInbound", func(t *testing.T) {
		rsp, err := f.client.StatInbound(ctx, &vizapi.RouteStatsRequest{Resource: res(vizapi.Deployment, "web")})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rsp.Rows {
			got = append(got, fmt.Sprintf("%s %s:%s %s %q %d/%d %s", r.Name, r.Server, r.Port, r.Route, r.RouteType, r.SuccessCount, r.FailureCount, lat(r.Latencies)))
		}
		want := []string{`web web-http:8080 [default] "" 0/4 -`, `web web-http:8080 items "HTTPRoute" 36/0 10/75/95`}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("StatOutbound", func(t *testing.T) {
		rsp, err := f.client.StatOutbound(ctx, &vizapi.RouteStatsRequest{Resource: res(vizapi.Deployment, "web")})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rsp.Rows {
			got = append(got, fmt.Sprintf("%s %s:%s %s %q %d/%d timeouts %d retries %d %s", r.Name, r.Service, r.Port, r.Route, r.RouteType,
				r.SuccessCount, r.FailureCount, r.Timeouts, r.Retries, lat(r.Latencies)))
			for _, b := range r.Backends {
				got = append(got, fmt.Sprintf("  -> %s:%s %d/%d timeouts %d %s", b.Name, b.Port, b.SuccessCount, b.FailureCount, b.Timeouts, lat(b.Latencies)))
			}
		}
		want := []string{
			`web catalog:8080 catalog-route "HTTPRoute" 24/8 timeouts 8 retries 4 5/9.5/9.9`,
			`  -> catalog:8080 20/0 timeouts 0 1/1.9/1.98`,
			`  -> catalog-v2:8080 0/4 timeouts 0 -`,
			`web ratings:9090 [default] "" 16/0 timeouts 0 retries 0 -`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("ListPods and ListServices", func(t *testing.T) {
		pods, err := f.client.ListPods(ctx, &vizapi.ListPodsRequest{Selector: &vizapi.ResourceSelection{Resource: vizapi.Resource{Namespace: ns}}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range pods.Pods {
			got = append(got, fmt.Sprintf("%s %s/%s added=%v", p.Status, p.OwnerKind, p.OwnerName, p.Added))
		}
		if g := strings.Join(got, ","); strings.Count(g, "Running deployment/") != 3 || strings.Count(g, "added=true") != 2 {
			t.Errorf("ListPods: %s", g)
		}
		svcs, err := f.client.ListServices(ctx, &vizapi.ListServicesRequest{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		if len(svcs.Services) != 2 || svcs.Services[0].Name != "catalog" || svcs.Services[1].Name != "web" {
			t.Errorf("ListServices: %+v", svcs.Services)
		}
	})

	t.Run("request metrics", func(t *testing.T) {
		n, err := testutil.GatherAndCount(f.metrics, "metrics_api_request_duration_seconds")
		if err != nil || n == 0 {
			t.Errorf("metrics_api_request_duration_seconds: %d series, %v", n, err)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, tc := range []struct {
			req  vizapi.StatSummaryRequest
			want string
		}{
			{vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res("gadget", "")}}, `unknown resource type "gadget"`},
			{vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "")}, TimeWindow: "soon"}, `time window "soon"`},
			{vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "nope")}}, `deployment ` + ns + `/nope`},
			{vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: res(vizapi.Deployment, "")}, ToResource: ptr(res(vizapi.Pod, "a")), FromResource: ptr(res(vizapi.Pod, "b"))}, "at most one"},
		} {
			_, err := f.client.StatSummary(ctx, &tc.req)
			if err == nil || !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v: err = %v, want HTTP 400 naming %q", tc.req, err, tc.want)
			}
		}
	})
}
