package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const demoNS = "l5d-demo"

// TestInstallCheckInjectAndMTLS deploys the demo application into a namespace annotated
// linkerd.io/inject: enabled on the HA control plane the suite installed, and asserts
// that every control-plane replica and every demo pod runs beside a ready proxy, that
// `linkerd check --proxy` passes, and that the catalog's proxy sees the web front end's
// requests over mTLS with web's identity.
func TestInstallCheckInjectAndMTLS(t *testing.T) {
	s := need(t)
	for _, component := range []string{"identity", "destination", "proxy-injector"} {
		pods := s.WaitPodsReady(t, 2*time.Minute, "linkerd", "linkerd.io/control-plane-component="+component, 3, true)
		nodes := map[string]bool{}
		for _, p := range pods {
			nodes[p.Spec.NodeName] = true
		}
		if len(nodes) != 3 {
			t.Errorf("the 3 %s replicas run on nodes %v, want 3 different nodes (--ha anti-affinity)", component, nodes)
		}
	}

	app, err := os.ReadFile(filepath.Join(s.Root, "test", "demo", "app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(t, string(app))
	s.deleteAtCleanup(t, demoNS)
	pods := s.WaitPodsReady(t, 4*time.Minute, demoNS, "", 4, true)
	s.MustRun(t, nil, s.Linkerd(), "check", "--proxy", "-n", demoNS, "--wait", "2m")

	var catalog string
	for _, p := range pods {
		if p.Labels["app"] == "catalog" {
			catalog = p.Name
		}
	}
	webID := "web." + demoNS + ".serviceaccount.identity.linkerd.cluster.local"
	s.Eventually(t, 2*time.Minute, "catalog's proxy counts inbound mTLS requests from "+webID, func() string {
		m, err := s.ProxyMetrics(demoNS, catalog)
		if err != nil {
			return err.Error()
		}
		if !meshedRequestsFrom(m, webID) {
			return "request_total lines:\n" + grepLines(m, "request_total")
		}
		return ""
	})
}

// meshedRequestsFrom reports whether a proxy's metrics count an inbound request over mTLS
// from client identity id.
func meshedRequestsFrom(metrics, id string) bool {
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "request_total{") && strings.Contains(l, `direction="inbound"`) &&
			strings.Contains(l, `tls="true"`) && strings.Contains(l, `client_id="`+id+`"`) && !strings.HasSuffix(l, " 0") {
			return true
		}
	}
	return false
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
