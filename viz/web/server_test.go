package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/pkg/vizapi"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/viz/internal/promtest"
	"github.com/l5d-go/l5d/viz/metricsapi"
	"github.com/l5d-go/l5d/viz/metricsapi/cluster"
	"github.com/l5d-go/l5d/viz/web"
)

// do sends a request to h with the given Host and returns the status and body.
func do(t *testing.T, h http.Handler, method, host, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, "http://"+host+path, strings.NewReader(body))
	req.Host = host
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestEnforcedHost: the dashboard is served to the default Hosts (loopback and the web
// Service's names, any port) and refused, with a message naming the Host, to any other
// (a DNS rebinding attack's page arrives with the attacker's name).
func TestEnforcedHost(t *testing.T) {
	s := &web.Server{EnforcedHost: regexp.MustCompile(web.DefaultEnforcedHost)}
	h := s.Handler()
	for _, host := range []string{"localhost:50750", "127.0.0.1:8084", "[::1]:1234", "localhost",
		"web.linkerd-viz.svc.cluster.local:8084", "web.linkerd-viz.svc:8084"} {
		code, body := do(t, h, http.MethodGet, host, "/", "")
		if code != http.StatusOK || !strings.Contains(body, "<title>Linkerd dashboard</title>") {
			t.Errorf("Host %s: HTTP %d, want the dashboard: %.200s", host, code, body)
		}
	}
	for _, host := range []string{"evil.example.com", "localhost.evil.example.com", "evil.example.com:8084",
		"web.linkerd-viz.svc.cluster.local.evil.example.com", "10.244.0.7:8084"} {
		for _, path := range []string{"/", "/app.js", "/api/health"} {
			code, body := do(t, h, http.MethodGet, host, path, "")
			if code != http.StatusBadRequest || !strings.Contains(body, fmt.Sprintf("host %q", host)) {
				t.Errorf("Host %s %s: HTTP %d %q, want 400 naming the host", host, path, code, body)
			}
		}
	}
	if code, _ := do(t, (&web.Server{}).Handler(), http.MethodGet, "localhost", "/", ""); code != http.StatusBadRequest {
		t.Errorf("no enforced host: HTTP %d, want every request refused", code)
	}
}

// TestAssets: the pages are embedded: index, script and style are served with their
// content types, and the script calls only the server's own paths.
func TestAssets(t *testing.T) {
	h := (&web.Server{EnforcedHost: regexp.MustCompile(web.DefaultEnforcedHost)}).Handler()
	for path, ctype := range map[string]string{"/": "text/html", "/app.js": "text/javascript", "/style.css": "text/css"} {
		req := httptest.NewRequest(http.MethodGet, "http://localhost"+path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), ctype) {
			t.Errorf("%s: HTTP %d, Content-Type %q, want 200 %s", path, rec.Code, rec.Header().Get("Content-Type"), ctype)
		}
		if strings.Contains(rec.Body.String(), "http://") || strings.Contains(rec.Body.String(), "https://") {
			t.Errorf("%s refers to an absolute URL: the dashboard must need nothing from the internet", path)
		}
	}
}

// meshedDeployment is a deployment of one pod with a proxy container.
func meshedDeployment(name string) *appsv1.Deployment {
	one := int32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name, "component": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "app", Image: "app"}, {Name: proxyconf.ProxyContainer, Image: "proxy"}}},
			},
		},
	}
}

// TestAgainstMetricsAPI: the dashboard's calls reach the real metrics-api (over the real
// Prometheus and API server) through the web server, the health view lists the pods of
// its namespaces, and bad requests are refused with a message naming the problem.
func TestAgainstMetricsAPI(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	ctx := context.Background()
	if _, err := c.Client().AppsV1().Deployments(ns).Create(ctx, meshedDeployment("ratings"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod string
	for deadline := time.Now().Add(2 * time.Minute); pod == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no pod of deployment ratings within 2m")
		}
		l, err := c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) > 0 {
			pod = l.Items[0].Name
		}
	}
	c.SetPodStatus(t, ns, pod, kube.PodStatus{IPs: []string{"10.244.9.2"}, Ready: true})
	// 3 successes and 1 failure per scrape: a 75% success rate.
	prom := promtest.Run(t, promtest.Options{Targets: []promtest.Target{{
		Labels: map[string]string{"namespace": ns, "pod": pod, "deployment": "ratings"},
		Text: func(k int) string {
			in := `direction="inbound",authority="ratings.` + ns + `.svc.cluster.local:8080",tls="true"`
			return fmt.Sprintf("response_total{%s,status_code=\"200\",classification=\"success\"} %d\n"+
				"response_total{%s,status_code=\"500\",classification=\"failure\"} %d\n", in, 3*k, in, k)
		},
	}}})
	cache := cluster.New(c.Client(), nil)
	cctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := cache.Start(cctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	mapi := httptest.NewServer((&metricsapi.Server{Prom: prom.API, Cache: cache, Now: func() time.Time { return prom.End }}).Handler())
	t.Cleanup(mapi.Close)
	mu, _ := url.Parse(mapi.URL)
	s := &web.Server{MetricsAPI: mu, Kube: c.Client(), Tap: c.Client().Discovery().RESTClient(), Health: []string{ns},
		EnforcedHost: regexp.MustCompile(web.DefaultEnforcedHost)}
	h := s.Handler()

	req, _ := json.Marshal(vizapi.StatSummaryRequest{Selector: vizapi.ResourceSelection{Resource: vizapi.Resource{Type: vizapi.Deployment, Namespace: ns}}, TimeWindow: "1m"})
	var row *vizapi.StatRow
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		code, body := do(t, h, http.MethodPost, "localhost:50750", "/api/v1/StatSummary", string(req))
		if code != http.StatusOK {
			t.Fatalf("StatSummary through web: HTTP %d: %s", code, body)
		}
		var rsp vizapi.StatSummaryResponse
		if err := json.Unmarshal([]byte(body), &rsp); err != nil {
			t.Fatalf("StatSummary through web: %v: %s", err, body)
		}
		if rsp.Ok != nil && len(rsp.Ok.StatTables) == 1 && len(rsp.Ok.StatTables[0].PodGroup.Rows) == 1 {
			row = &rsp.Ok.StatTables[0].PodGroup.Rows[0]
			if row.MeshedPodCount == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("StatSummary through web: no meshed row for ratings within 1m: %s", body)
		}
	}
	if row.Resource.Name != "ratings" || row.Stats == nil || row.Stats.SuccessCount != 12 || row.Stats.FailureCount != 4 {
		t.Errorf("ratings row %+v stats %+v, want 12 successes and 4 failures (75%%) in the 1m window", row, row.Stats)
	}

	// Only the API's methods are relayed.
	if code, body := do(t, h, http.MethodPost, "localhost", "/api/v1/Nope", "{}"); code == http.StatusOK {
		t.Errorf("unknown method relayed: HTTP %d %s", code, body)
	}
	// A bad request comes back as the metrics-api's 400.
	if code, body := do(t, h, http.MethodPost, "localhost", "/api/v1/StatSummary", `{"selector":{"resource":{"type":"nope"}}}`); code != http.StatusBadRequest || !strings.Contains(body, "nope") {
		t.Errorf("bad StatSummary: HTTP %d %q, want 400 naming the type", code, body)
	}

	code, body := do(t, h, http.MethodGet, "localhost", "/api/health", "")
	var health []web.ComponentHealth
	if err := json.Unmarshal([]byte(body), &health); code != http.StatusOK || err != nil {
		t.Fatalf("health: HTTP %d %v: %s", code, err, body)
	}
	if len(health) != 1 || health[0].Pod != pod || !health[0].Ready || !health[0].Meshed || health[0].Component != "ratings" {
		t.Errorf("health = %+v, want pod %s ready and meshed, component ratings", health, pod)
	}

	for body, want := range map[string]string{
		"{": "bad tap request",
		`{"target":{"resource":{"type":"nope","name":"x"}}}`: "nope",
	} {
		code, got := do(t, h, http.MethodPost, "localhost", "/api/tap", body)
		if code != http.StatusBadRequest || !strings.Contains(got, want) {
			t.Errorf("tap %s: HTTP %d %q, want 400 with %q", body, code, got, want)
		}
	}
	// The tap API is not installed on this API server: its refusal comes back.
	tapReq, _ := json.Marshal(vizapi.TapByResourceRequest{Target: vizapi.ResourceSelection{Resource: vizapi.Resource{Type: vizapi.Deployment, Namespace: ns, Name: "ratings"}}})
	rec := httptest.NewRecorder()
	hreq := httptest.NewRequest(http.MethodPost, "http://localhost/api/tap", bytes.NewReader(tapReq))
	h.ServeHTTP(rec, hreq)
	if b, _ := io.ReadAll(rec.Body); rec.Code != http.StatusBadGateway || !strings.Contains(string(b), "ratings") {
		t.Errorf("tap without the tap API: HTTP %d %q, want 502 naming the target", rec.Code, b)
	}
}

func TestMain(m *testing.M) { kube.Main(m, kube.Options{ControllerManager: true}) }
