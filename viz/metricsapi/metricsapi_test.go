package metricsapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/viz/api"
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
	client *api.Client
	pods   map[string]string // deployment -> its pod
}

func deployment(name string, meshed bool) *appsv1.Deployment {
	one := int32(1)
	containers := []corev1.Container{{Name: "app", Image: "app"}}
	if meshed {
		containers = append(containers, corev1.Container{Name: cluster.ProxyContainer, Image: "proxy"})
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
	webText := func(n int) string {
		return strings.Join([]string{
			// Inbound: 9 successes and 1 failure per 15s from catalog... and prometheus.
			fmt.Sprintf(`response_total{direction="inbound",tls="true",client_id=%q,status_code="200",classification="success"} %d`, id("prometheus", "linkerd-viz"), 9*n),
			fmt.Sprintf(`response_total{direction="inbound",tls="true",client_id=%q,status_code="500",classification="failure"} %d`, id("prometheus", "linkerd-viz"), n),
			fmt.Sprintf(`response_latency_ms_bucket{direction="inbound",le="10"} %d`, 5*n),
			fmt.Sprintf(`response_latency_ms_bucket{direction="inbound",le="50"} %d`, 9*n),
			fmt.Sprintf(`response_latency_ms_bucket{direction="inbound",le="100"} %d`, 10*n),
			fmt.Sprintf(`response_latency_ms_bucket{direction="inbound",le="+Inf"} %d`, 10*n),
			`tcp_open_connections{direction="inbound"} 2`,
			fmt.Sprintf(`tcp_read_bytes_total{direction="inbound"} %d`, 1500*n),
			fmt.Sprintf(`tcp_write_bytes_total{direction="inbound"} %d`, 3000*n),
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
		return fmt.Sprintf(`response_total{direction="inbound",tls="true",client_id=%q,status_code="200",classification="success"} %d`, id("default", ns), 4*n)
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
	srv := &metricsapi.Server{Prom: prom.API, Cache: cache, Now: func() time.Time { return prom.End }}
	// The cache may not have seen the pods' Running status yet: wait for it.
	deadline = time.Now().Add(time.Minute)
	for {
		objs, err := cache.List(api.Resource{Type: api.Deployment, Namespace: ns}, "")
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
	return &fixture{ns: ns, client: &api.Client{BaseURL: hs.URL}, pods: pods}
}

// The outbound latency buckets hold 4 observations per scrape, all <= 5ms: the median
// interpolates to 2.5ms (3 rounded), p95 and p99 to 4.75 and 4.95ms (5).

// statRows renders a StatSummary answer's rows as "ns/name meshed/running success
// failure p50 p95 p99 [conns read write]", "-" for rows without traffic.
func statRows(rsp *api.StatSummaryResponse) []string {
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
	res := func(typ, name string) api.Resource { return api.Resource{Type: typ, Namespace: ns, Name: name} }
	ptr := func(r api.Resource) *api.Resource { return &r }

	t.Run("StatSummary", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			req  api.StatSummaryRequest
			want []string
		}{{
			name: "deployments: inbound traffic, meshed counts",
			req:  api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "")}, TCPStats: true},
			want: []string{
				fmt.Sprintf("deployment/%s/catalog 1/1 16 0 0 0 0", ns),
				fmt.Sprintf("deployment/%s/legacy 0/1 -", ns),
				// 36 of 40 succeeded; latency buckets 5 <=10ms, 4 <=50ms, 1 <=100ms.
				fmt.Sprintf("deployment/%s/web 1/1 36 4 10 75 95 tcp 2 6000 12000", ns),
			},
		}, {
			name: "one deployment",
			req:  api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "web")}},
			want: []string{fmt.Sprintf("deployment/%s/web 1/1 36 4 10 75 95", ns)},
		}, {
			name: "label selector",
			req:  api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, ""), LabelSelector: "nothing=here"}},
			want: nil,
		}, {
			name: "services: seen from their clients",
			req:  api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Service, "")}},
			want: []string{fmt.Sprintf("service/%s/catalog 1/1 16 0 3 5 5", ns), fmt.Sprintf("service/%s/web 1/1 -", ns)},
		}, {
			name: "--to: web's requests to catalog",
			req:  api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "web")}, ToResource: ptr(res(api.Deployment, "catalog"))},
			want: []string{fmt.Sprintf("deployment/%s/web 1/1 16 0 3 5 5", ns)},
		}, {
			name: "--to narrows: web sent nothing to legacy",
			req:  api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "web")}, ToResource: ptr(res(api.Deployment, "legacy"))},
			want: []string{fmt.Sprintf("deployment/%s/web 1/1 -", ns)},
		}, {
			name: "--from: requests of web to each deployment",
			req:  api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "")}, FromResource: ptr(res(api.Deployment, "web"))},
			want: []string{fmt.Sprintf("deployment/%s/catalog 1/1 16 0 3 5 5", ns), fmt.Sprintf("deployment/%s/legacy 0/1 -", ns), fmt.Sprintf("deployment/%s/web 1/1 -", ns)},
		}, {
			name: "namespace",
			req:  api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: api.Resource{Type: api.Namespace, Name: ns}}},
			want: []string{fmt.Sprintf("namespace//%s 2/3 52 4 10 75 95", ns)},
		}, {
			name: "pods",
			req:  api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Pod, f.pods["catalog"])}},
			want: []string{fmt.Sprintf("pod/%s/%s 1/1 16 0 0 0 0", ns, f.pods["catalog"])},
		}, {
			name: "skip stats",
			req:  api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "web")}, SkipStats: true},
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
		rsp, err := f.client.StatSummary(ctx, &api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.All, "")}})
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, tb := range rsp.Ok.StatTables {
			types = append(types, tb.PodGroup.Rows[0].Resource.Type)
		}
		if got := strings.Join(types, ","); got != "deployment,pod,service,replicaset" {
			t.Errorf("tables of all: %s", got)
		}
	})

	t.Run("Edges", func(t *testing.T) {
		rsp, err := f.client.Edges(ctx, &api.EdgesRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "")}})
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
		routes := func(req api.TopRoutesRequest) string {
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
			"deployment/web [DEFAULT] " + auth + " -",
		}, "\n")
		if got := routes(api.TopRoutesRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "web")}, ToResource: ptr(res(api.Service, "catalog"))}); got != want {
			t.Errorf("web --to svc/catalog: got\n%s\nwant\n%s", got, want)
		}
		// Without --to: catalog's routes as its clients saw them (the proxies export no
		// inbound route series here), effective only.
		want = strings.Join([]string{
			"deployment/catalog GET /items " + auth + " 12 4 actual 0 0 p50 10",
			"deployment/catalog POST /items " + auth + " -",
			"deployment/catalog [DEFAULT] " + auth + " -",
		}, "\n")
		if got := routes(api.TopRoutesRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "catalog")}}); got != want {
			t.Errorf("catalog: got\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("ListPods and ListServices", func(t *testing.T) {
		pods, err := f.client.ListPods(ctx, &api.ListPodsRequest{Selector: &api.ResourceSelection{Resource: api.Resource{Namespace: ns}}})
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
		svcs, err := f.client.ListServices(ctx, &api.ListServicesRequest{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		if len(svcs.Services) != 2 || svcs.Services[0].Name != "catalog" || svcs.Services[1].Name != "web" {
			t.Errorf("ListServices: %+v", svcs.Services)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, tc := range []struct {
			req  api.StatSummaryRequest
			want string
		}{
			{api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res("gadget", "")}}, `unknown resource type "gadget"`},
			{api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "")}, TimeWindow: "soon"}, `time window "soon"`},
			{api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "nope")}}, `deployment ` + ns + `/nope`},
			{api.StatSummaryRequest{Selector: api.ResourceSelection{Resource: res(api.Deployment, "")}, ToResource: ptr(res(api.Pod, "a")), FromResource: ptr(res(api.Pod, "b"))}, "at most one"},
		} {
			_, err := f.client.StatSummary(ctx, &tc.req)
			if err == nil || !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v: err = %v, want HTTP 400 naming %q", tc.req, err, tc.want)
			}
		}
	})
}
