package command

import (
	"strings"
	"testing"

	"github.com/l5d-go/l5d/test/kube"
)

// TestVizDashboardErrors: bad flags and a cluster without the dashboard fail at once,
// naming the problem (the dashboard itself is driven in a browser by test/e2e TestViz).
func TestVizDashboardErrors(t *testing.T) {
	c := kube.Shared(t)
	kc := c.Kubeconfig()
	ns := c.Namespace(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--show", "grafana"}, `--show "grafana"`},
		{[]string{"--port", "70000"}, "--port 70000"},
		{[]string{"--viz-namespace", ns}, "the viz dashboard is not installed in namespace " + ns},
	} {
		_, _, err := run(t, "", append([]string{"viz", "dashboard", "--kubeconfig", kc, "--show", "url"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("viz dashboard %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
