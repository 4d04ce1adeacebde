package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/demo/traffic"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const vizNS = "linkerd-viz"

// TestViz installs the viz extension as a user does (`linkerd viz install | kubectl apply
// -f -`, `linkerd viz check`), runs the demo application in a namespace of its own, and
// checks that the extension's real Prometheus holds the demo proxies' metrics under
// Linkerd's labels (asked through the API server's service proxy, as the CLI asks), that
// `linkerd viz check --proxy` and `linkerd viz list` see the demo pods scraped, that viz
// stat, edges and routes answer from metrics-api (vizQueries), and that `linkerd viz
// uninstall | kubectl delete -f -` leaves nothing of the extension behind.
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
	// The tap injector must be serving before the demo's pods are created (its webhook
	// ignores failures): metrics-api, prometheus, tap, tap-injector and web.
	s.WaitPodsReady(t, 4*time.Minute, vizNS, "linkerd.io/extension=viz", 5, true)
	s.DemoApp(t, ns, "0.25")
	s.MustRun(t, nil, s.Linkerd(), "viz", "check", "--wait", "3m")
	pods := s.WaitPodsReady(t, 4*time.Minute, ns, "", 4, true)
	// The minute of traffic vizQueries compares with starts now, once requests succeed,
	// and runs while the scrapes are checked.
	tr := s.podOf(t, ns, "traffic")
	s.waitTrafficStatus(t, ns, tr, "200")
	start := s.mustTrafficStats(t, ns, tr)
	s.Apply(t, fmt.Sprintf(`apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: ratings.%[1]s.svc.cluster.local, namespace: %[1]s}
spec:
  routes:
  - name: GetRating
    condition: {method: POST, pathRegex: '%[2]s'}
`, ns, regexp.QuoteMeta(getRatingPath)))

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

	s.vizQueries(t, ns, tr, start)
	s.vizTap(t, ns)
	s.vizDashboard(t, ns)

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

// vizQueries checks the metrics-api's answers on the demo in namespace ns (ratings failing
// 25% of its calls, a ServiceProfile naming its GetRating route): after a minute of
// traffic since the generator tr counted start, `viz stat deploy` shows every deployment
// meshed and web's success rate within 5 points of the traffic generator's own count over
// that minute; --from and --to narrow it to web's callees and callers; `viz edges` shows
// web -> catalog and web -> ratings secured with both identities; and `viz routes` shows
// the profile's route with numbers.
func (s *Suite) vizQueries(t *testing.T, ns, tr string, start traffic.Stats) {
	var end traffic.Stats
	s.Eventually(t, 3*time.Minute, "a minute of demo traffic (600 requests)", func() string {
		end = s.mustTrafficStats(t, ns, tr)
		if n := end.Sent - start.Sent; n < 600 {
			return fmt.Sprintf("%d requests so far", n)
		}
		return ""
	})
	d := statsDelta(start, end)
	want := 1 - float64(d.Failed)/float64(d.Sent)

	type statRow struct {
		Name    string   `json:"name"`
		Meshed  string   `json:"meshed"`
		Success *float64 `json:"success"`
		RPS     *float64 `json:"rps"`
	}
	stat := func(args ...string) map[string]statRow {
		var rows []statRow
		out := s.MustRun(t, nil, s.Linkerd(), append([]string{"viz", "stat", "deploy", "-n", ns, "-t", "1m", "-o", "json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("viz stat %v -o json: %v\n%s", args, err, out)
		}
		m := map[string]statRow{}
		for _, r := range rows {
			if r.Success != nil {
				m[r.Name] = r
			}
		}
		return m
	}
	all := stat()
	for _, dep := range []string{"web", "catalog", "ratings"} {
		if r, ok := all[dep]; !ok || r.Meshed != "1/1" || r.RPS == nil || *r.RPS <= 0 {
			t.Errorf("viz stat deploy/%s: %+v, want meshed 1/1 with traffic", dep, r)
		}
	}
	if r := all["web"]; r.Success == nil || *r.Success < want-0.05 || *r.Success > want+0.05 {
		t.Errorf("viz stat: web's success rate %v, the traffic generator counted %.3f (%d of %d failed)", r.Success, want, d.Failed, d.Sent)
	} else {
		t.Logf("web's success rate: %.4f by viz stat -t 1m, %.4f by the traffic generator (%d of %d failed)", *r.Success, want, d.Failed, d.Sent)
	}
	if got := keys(stat("--from", "deploy/web")); got != "catalog ratings" {
		t.Errorf("viz stat deploy --from deploy/web: deployments with traffic %q, want catalog and ratings", got)
	}
	if got := keys(stat("--to", "deploy/ratings")); got != "web" {
		t.Errorf("viz stat deploy --to deploy/ratings: deployments with traffic %q, want web", got)
	}

	var edges []struct {
		Src      string `json:"src"`
		Dst      string `json:"dst"`
		ClientID string `json:"client_id"`
		ServerID string `json:"server_id"`
	}
	out := s.MustRun(t, nil, s.Linkerd(), "viz", "edges", "deploy", "-n", ns, "-o", "json")
	if err := json.Unmarshal([]byte(out), &edges); err != nil {
		t.Fatalf("viz edges -o json: %v\n%s", err, out)
	}
	for _, dst := range []string{"catalog", "ratings"} {
		found := false
		for _, e := range edges {
			if e.Src == "web" && e.Dst == dst {
				found = true
				if e.ClientID != identity(ns, "web") || e.ServerID != identity(ns, dst) {
					t.Errorf("edge web -> %s: client %q server %q, want both identities", dst, e.ClientID, e.ServerID)
				}
			}
		}
		if !found {
			t.Errorf("viz edges deploy -n %s has no web -> %s:\n%s", ns, dst, out)
		}
	}

	s.Eventually(t, 2*time.Minute, "viz routes shows GetRating with numbers", func() string {
		out, err := s.Run(nil, s.Linkerd(), "viz", "routes", "deploy/web", "-n", ns, "--to", "svc/ratings", "-o", "json")
		if err != nil {
			return err.Error()
		}
		var tables map[string][]struct {
			Route string   `json:"route"`
			RPS   *float64 `json:"rps"`
		}
		if err := json.Unmarshal([]byte(out), &tables); err != nil {
			return fmt.Sprintf("%v: %s", err, out)
		}
		for _, rows := range tables {
			for _, r := range rows {
				if r.Route == "GetRating" && r.RPS != nil && *r.RPS > 0 {
					return ""
				}
			}
		}
		return out
	})
}

// keys returns a map's keys sorted and joined by spaces.
func keys[V any](m map[string]V) string {
	return strings.Join(sortedKeys(m), " ")
}
