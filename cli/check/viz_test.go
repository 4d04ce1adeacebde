package check

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/cli/vizext"
	"github.com/l5d-go/l5d/cli/vizprom"
	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// startPrometheus runs the real Prometheus server (tools/prometheus/build.sh) scraping a
// loopback stand-in for the proxy of pod ns/pod as job linkerd-proxy every second, and
// returns its URL once the target has been scraped.
func startPrometheus(t *testing.T, ns, pod string) string {
	t.Helper()
	out, err := exec.Command("../../tools/prometheus/build.sh").Output()
	if err != nil {
		t.Fatalf("tools/prometheus/build.sh (make prometheus-bin): %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	bin := lines[len(lines)-1]
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE request_total counter\nrequest_total{direction=\"inbound\"} 1")
	}))
	t.Cleanup(proxy.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
- job_name: linkerd-proxy
  static_configs:
  - targets: [%q]
    labels: {namespace: %q, pod: %q}
`, strings.TrimPrefix(proxy.URL, "http://"), ns, pod)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})
	url := "http://" + addr
	p, err := vizprom.NewForURL(url, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		if up, err := p.ScrapedProxies(ctx, ns); err == nil && up[ns+"/"+pod] {
			return url
		}
		select {
		case <-ctx.Done():
			t.Fatalf("prometheus at %s never scraped its target:\n%s", url, logs.String())
		case <-time.After(200 * time.Millisecond): // poll interval
		}
	}
}

// TestVizChecks runs viz check against a real API server (no pods run: there is no
// kubelet; the test reports pod statuses) and the real Prometheus: before the extension is
// installed; installed with its pods not running; and with --proxy on a namespace under a
// deny default policy, whose pods Prometheus must be allowed to scrape (until
// allow-scrapes' policy is applied) and must have scraped (one of the two pods is not).
func TestVizChecks(t *testing.T) {
	c := kube.Shared(t)
	ctx := context.Background()
	const dp = "l5d-vizcheck-app"
	promURL := startPrometheus(t, dp, "web-1")
	o := VizOptions{Namespace: "linkerd", CLIVersion: "dev", Prometheus: func(string) (Prometheus, error) {
		return vizprom.NewForURL(promURL, http.DefaultClient)
	}}
	rep := RunViz(ctx, c.Client(), c.Dynamic(), o)
	if got := results(rep)["linkerd-viz/linkerd-viz Namespace exists"]; rep.Success || got != "error" || len(rep.Categories[0].Checks) != 1 {
		t.Fatalf("viz check without the extension: %v", results(rep))
	}
	if e := rep.Categories[0].Checks[0].Error; !strings.Contains(e, "linkerd viz install") {
		t.Errorf("no advice to install the extension: %q", e)
	}

	crds, err := install.Render(install.Options{CRDs: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", string(crds))
	// Control planes other tests installed run policy webhooks no process serves here:
	// the namespaces opt out of them.
	optOut := map[string]string{"config.linkerd.io/admission-webhooks": "disabled"}
	for _, ns := range []string{vizext.DefaultNamespace, dp} {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: optOut}}
		if ns == dp {
			n.Annotations = map[string]string{"config.linkerd.io/default-inbound-policy": "deny"}
		}
		if _, err := c.Client().CoreV1().Namespaces().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	viz, err := vizext.Render(vizext.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, vizext.DefaultNamespace, string(viz))
	c.CreateServiceAccount(t, dp, "default")
	for _, p := range []string{"web-1", "web-2"} {
		c.CreatePod(t, meshedPod(p, dp, nil))
		c.SetPodStatus(t, dp, p, kube.PodStatus{Ready: true, IPs: []string{"10.244.9.10"}})
	}

	o.Proxy, o.DataPlaneNamespace = true, dp
	rep = RunViz(ctx, c.Client(), c.Dynamic(), o)
	want := map[string]string{
		"linkerd-viz/linkerd-viz Namespace exists":                                  "success",
		"linkerd-viz/can initialize the client":                                     "success",
		"linkerd-viz/linkerd-viz ClusterRoles exist":                                "success",
		"linkerd-viz/linkerd-viz ClusterRoleBindings exist":                         "success",
		"linkerd-viz/linkerd-viz pods are injected":                                 "success",
		"linkerd-viz/viz extension pods are running":                                "error",
		"linkerd-viz/viz extension proxies are healthy":                             "success",
		"linkerd-viz/viz extension proxies and cli versions match":                  "success",
		"linkerd-viz/prometheus is installed and configured correctly":              "success",
		"linkerd-viz/viz extension self-check":                                      "error",
		"linkerd-viz-data-plane/data plane namespace exists":                        "success",
		"linkerd-viz-data-plane/prometheus is authorized to scrape data plane pods": "warning",
		"linkerd-viz-data-plane/data plane proxy metrics are present in Prometheus": "error",
	}
	got := results(rep)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("ran %d checks, want %d: %v", len(got), len(want), got)
	}
	var b bytes.Buffer
	WriteTable(&b, rep)
	for _, w := range []string{"\t* " + dp + "/web-1\n", "linkerd viz allow-scrapes --namespace " + dp, "Data plane metrics not found for " + dp + "/web-2."} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("viz check output lacks %q:\n%s", w, b.String())
		}
	}

	var scrapes bytes.Buffer
	if err := vizext.WriteAllowScrapes(&scrapes, vizext.ScrapeOptions{Namespace: dp, VizNamespace: vizext.DefaultNamespace, CreatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	c.Apply(t, dp, scrapes.String())
	if got := results(RunViz(ctx, c.Client(), c.Dynamic(), o))["linkerd-viz-data-plane/prometheus is authorized to scrape data plane pods"]; got != "success" {
		t.Errorf("after allow-scrapes: %q, want success", got)
	}
}
