package command

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/test/kube"
)

// TestVizCommandsBadInput: each mistake is refused before any call, naming it.
func TestVizCommandsBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"viz", "stat", "deploy", "-o", "yaml"}, `--output "yaml": want table, wide or json`},
		{[]string{"viz", "edges", "deploy", "-o", "yaml"}, `--output "yaml": want table, wide or json`},
		{[]string{"viz", "edges", "deploy/web"}, `edges takes a resource type (e.g. deploy), not "deploy/web"`},
		{[]string{"viz", "edges", "gadgets"}, `unknown resource type "gadgets"`},
		{[]string{"viz", "routes", "deploy/web", "-t", "soon"}, `--time-window: time window "soon"`},
		{[]string{"viz", "routes", "all"}, `routes takes a service or workload, not "all"`},
		{[]string{"viz", "routes", "deploy/web", "--to", "all"}, `--to: "all" is not a resource`},
		{[]string{"viz", "stat-outbound", "deploy/web", "-o", "wide"}, "--output wide: stat-outbound prints table or json"},
		{[]string{"viz", "stat-inbound", "svc/web"}, `stat-inbound takes a workload, pod or namespace, not "svc/web"`},
		{[]string{"viz", "stat-inbound", "deploy/web", "-A"}, "stat-inbound takes one resource"},
	} {
		_, _, err := run(t, "", append(tc.args, "--kubeconfig", "/nonexistent")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestVizCommandsWithoutViz: without the extension the metrics-api commands say how to
// install it, and stat falls back to scraping only for what it can do that way.
func TestVizCommandsWithoutViz(t *testing.T) {
	c := kube.Shared(t)
	kc := c.Kubeconfig()
	ns := c.Namespace(t)
	for _, args := range [][]string{
		{"viz", "edges", "deploy"},
		{"viz", "routes", "deploy/web"},
		{"viz", "stat-inbound", "deploy/web"},
		{"viz", "stat-outbound", "deploy/web"},
	} {
		_, _, err := run(t, "", append(args, "-n", ns, "--kubeconfig", kc)...)
		if err == nil || !strings.Contains(err.Error(), "the viz extension is not installed in namespace linkerd-viz") ||
			!strings.Contains(err.Error(), "linkerd viz install | kubectl apply -f -") {
			t.Errorf("%q: err = %v", args, err)
		}
	}
	_, _, err := run(t, "", "viz", "stat", "deploy", "-n", ns, "--to", "svc/web", "--kubeconfig", kc)
	if err == nil || !strings.Contains(err.Error(), "--from, --to, --all-namespaces, --selector and --output need the viz extension") {
		t.Errorf("stat --to without viz: err = %v", err)
	}
	_, _, err = run(t, "", "viz", "stat", "sts", "-n", ns, "--kubeconfig", kc, "-t", "1ms")
	if err == nil || !strings.Contains(err.Error(), "without the viz extension stat covers deploy, svc, pod and ns, not statefulset") {
		t.Errorf("stat sts without viz: err = %v", err)
	}
}

// TestVizThroughServiceProxy: with the metrics-api Service in place the commands call it
// through the real API server's service proxy (port "http"); here the Service has no
// endpoints (no controller manager, and this API server cannot reach pods anyway), so
// the proxy answers 404 or 503 and the error says to check the extension.
func TestVizThroughServiceProxy(t *testing.T) {
	c := kube.Shared(t)
	kc := c.Kubeconfig()
	vizNS := c.Namespace(t)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "metrics-api"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"component": "metrics-api"}, Ports: []corev1.ServicePort{{Name: "http", Port: 8085}}}}
	if _, err := c.Client().CoreV1().Services(vizNS).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"viz", "stat", "deploy"},
		{"viz", "edges", "deploy"},
		{"viz", "routes", "deploy/web"},
	} {
		_, _, err := run(t, "", append(args, "--viz-namespace", vizNS, "--kubeconfig", kc)...)
		if err == nil || !strings.Contains(err.Error(), "metrics-api /api/v1/") || !strings.Contains(err.Error(), "API server: ") ||
			!strings.Contains(err.Error(), "linkerd viz check") {
			t.Errorf("%q: err = %v", args, err)
		}
	}
}
