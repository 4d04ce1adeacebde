package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const vizNS = "linkerd-viz"

// TestViz installs the viz extension as a user does (`linkerd viz install | kubectl apply
// -f -`, `linkerd viz check`), runs the demo application in a namespace of its own, and
// checks that the extension's real Prometheus holds the demo proxies' metrics under
// Linkerd's labels (asked through the API server's service proxy, as the CLI asks), that
// `linkerd viz check --proxy` and `linkerd viz list` see the demo pods scraped, and that
// `linkerd viz uninstall | kubectl delete -f -` leaves nothing of the extension behind.
func TestViz(t *testing.T) {
	s := need(t)
	const ns = "e2e-viz"
	s.Apply(t, s.MustRun(t, nil, s.Linkerd(), "viz", "install"))
	installed := true
	t.Cleanup(func() {
		if installed {
			if t.Failed() {
				s.dumpNamespaceLogs(t.Output(), vizNS)
			}
			if un, err := s.Run(nil, s.Linkerd(), "viz", "uninstall"); err == nil {
				_, _ = s.Run([]byte(un), s.Kubectl(), "delete", "--ignore-not-found", "-f", "-")
			}
		}
	})
	s.DemoApp(t, ns, "0.1")
	s.WaitPodsReady(t, 4*time.Minute, vizNS, "linkerd.io/extension=viz", 2, true)
	s.MustRun(t, nil, s.Linkerd(), "viz", "check", "--wait", "3m")
	pods := s.WaitPodsReady(t, 4*time.Minute, ns, "", 4, true)

	// Every demo pod's proxy is scraped, with Linkerd viz's labels.
	for _, p := range pods {
		owner := p.Labels["app"]
		q := fmt.Sprintf(`request_total{job="linkerd-proxy",namespace=%q,pod=%q,direction="outbound"}`, ns, p.Name)
		if owner != "traffic" {
			q = fmt.Sprintf(`request_total{job="linkerd-proxy",namespace=%q,pod=%q,direction="inbound"}`, ns, p.Name)
		}
		s.Eventually(t, 2*time.Minute, "Prometheus holds "+q, func() string {
			series, err := s.PromQuery(q)
			if err != nil {
				return err.Error()
			}
			if len(series) == 0 {
				return "no series yet"
			}
			l := series[0]
			for k, want := range map[string]string{
				"deployment": owner, "control_plane_ns": "linkerd", "workload_ns": ns, "app": owner,
			} {
				if l[k] != want {
					return fmt.Sprintf("label %s=%q, want %q, in %v", k, l[k], want, l)
				}
			}
			if l["replicaset"] != "" || l["pod_template_hash"] == "" {
				return fmt.Sprintf("owner labels of a Deployment's pod: %v", l)
			}
			return ""
		})
	}
	// The control plane's components are scraped at their admin ports.
	s.Eventually(t, 2*time.Minute, "Prometheus scrapes the control plane", func() string {
		series, err := s.PromQuery(`up{job="linkerd-controller",namespace="linkerd"} == 1`)
		if err != nil {
			return err.Error()
		}
		comps := map[string]bool{}
		for _, l := range series {
			comps[l["component"]] = true
		}
		for _, c := range []string{"identity", "destination", "proxy-injector"} {
			if !comps[c] {
				return fmt.Sprintf("no %s target up among %v", c, series)
			}
		}
		return ""
	})
	s.MustRun(t, nil, s.Linkerd(), "viz", "check", "--proxy", "-n", ns, "--wait", "1m")
	list := s.MustRun(t, nil, s.Linkerd(), "viz", "list", "-n", ns)
	for _, p := range pods {
		if !strings.Contains(list, "* "+ns+"/"+p.Name+"\n") || strings.Contains(list, "does not scrape") {
			t.Errorf("viz list -n %s does not show %s scraped:\n%s", ns, p.Name, list)
		}
	}

	// Uninstall removes everything install created.
	un := s.MustRun(t, nil, s.Linkerd(), "viz", "uninstall")
	s.MustRun(t, []byte(un), s.Kubectl(), "delete", "-f", "-")
	installed = false
	s.Eventually(t, 3*time.Minute, "nothing of the viz extension left", func() string {
		if _, err := s.Cluster.Client().CoreV1().Namespaces().Get(s.Ctx, vizNS, metav1.GetOptions{}); err == nil {
			return "namespace " + vizNS + " still exists"
		}
		var left []string
		for _, kind := range []string{"clusterroles", "clusterrolebindings", "namespaces"} {
			out, err := s.Run(nil, s.Kubectl(), "get", kind, "-l", "linkerd.io/extension=viz", "-o", "name")
			if err != nil {
				return err.Error()
			}
			left = append(left, strings.Fields(out)...)
		}
		if len(left) > 0 {
			return fmt.Sprintf("still there: %v", left)
		}
		return ""
	})
	if out, err := s.Run(nil, s.Linkerd(), "viz", "uninstall"); err == nil {
		t.Errorf("viz uninstall after uninstalling still lists:\n%s", out)
	}
}

// PromQuery evaluates an instant PromQL query in the viz extension's Prometheus through
// the API server's service proxy and returns each sample's labels.
func (s *Suite) PromQuery(q string) ([]map[string]string, error) {
	b, err := s.Cluster.Client().CoreV1().Services(vizNS).
		ProxyGet("http", "prometheus", "admin-http", "/api/v1/query", map[string]string{"query": q}).DoRaw(s.Ctx)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w: %s", q, err, b)
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, fmt.Errorf("query %s: %w: %.300s", q, err, b)
	}
	if resp.Status != "success" || resp.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: %.300s", q, b)
	}
	out := make([]map[string]string, 0, len(resp.Data.Result))
	for _, r := range resp.Data.Result {
		out = append(out, r.Metric)
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["pod"] < out[j]["pod"] })
	return out, nil
}
