package command

import (
	"strings"
	"testing"

	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
)

func TestStatTarget(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy"}, "deployment"},
		{[]string{"deployments/web"}, "deployment/web"},
		{[]string{"po", "web-0"}, "pod/web-0"},
		{[]string{"ns"}, "namespace"},
		{[]string{"svc/web"}, "service/web"},
		{[]string{"sts/db"}, "without the viz extension stat covers deploy, svc, pod and ns, not statefulset"},
		{[]string{"deploy/web", "web"}, `name given twice: "deploy/web" and "web"`},
		{[]string{"deploy/"}, `resource "deploy/": empty name`},
		{[]string{"widgets"}, `unknown resource kind "widgets"`},
	} {
		ref, err := statTarget(tc.args)
		got := ref.String()
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestVizStatAgainstAPIServer: stat lists the deployments, pods and namespace with their
// meshed counts; the one running meshed pod cannot be scraped through this API server
// (no route to pods), which is a warning naming it, and the table has no traffic figures.
func TestVizStatAgainstAPIServer(t *testing.T) {
	c := kube.Shared(t)
	kc := c.Kubeconfig()
	ns := c.Namespace(t)
	app := corev1.Container{Name: "web", Image: "web"}
	proxy := corev1.Container{Name: "linkerd-proxy", Image: "proxy"}
	c.CreatePod(t, testPod(ns, "web-1", map[string]string{"app": "web"}, app, proxy))
	c.CreatePod(t, testPod(ns, "web-2", map[string]string{"app": "web"}, app))
	c.SetPodStatus(t, ns, "web-1", kube.PodStatus{IPs: []string{"127.0.0.1"}, Ready: true})
	out, _, err := run(t, "", "viz", "stat", "pods", "--kubeconfig", kc, "-n", ns, "-t", "1ms")
	if err != nil {
		t.Fatal(err)
	}
	want := "NAME MESHED SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99 TLS|web-1 1/1 - - - - - -|web-2 0/1 - - - - - -"
	if got := fields(out); got != want {
		t.Errorf("stat pods:\n%s\nwant %q", out, want)
	}
	var errOut string
	out, errOut, err = run(t, "", "viz", "stat", "ns/"+ns, "--kubeconfig", kc, "-t", "1ms")
	if err != nil || !strings.HasSuffix(fields(out), "|"+ns+" 1/2 - - - - - -") {
		t.Errorf("stat ns/%s: %v\n%s", ns, err, out)
	}
	if !strings.Contains(errOut, "warning: scraping the proxy of pod "+ns+"/web-1") {
		t.Errorf("no warning about the unreachable pod: %q", errOut)
	}
	if _, _, err := run(t, "", "viz", "stat", "deploy/nope", "--kubeconfig", kc, "-n", ns, "-t", "1ms"); err == nil ||
		!strings.Contains(err.Error(), "deployment "+ns+"/nope") {
		t.Errorf("stat of a missing deployment: err = %v", err)
	}
	out, _, err = run(t, "", "viz", "stat", "deploy", "--kubeconfig", kc, "-n", ns, "-t", "1ms")
	if err != nil || out != "No deployments found in namespace "+ns+".\n" {
		t.Errorf("stat deploy in a namespace without deployments: %q %v", out, err)
	}
}

// fields joins the output's lines with "|", each line's columns single-spaced.
func fields(out string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "|")
}

func TestAuthzBadInput(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"authz", "-n", ns, "ns/" + ns}, "not a namespace"},
		{[]string{"authz", "-n", ns, "deploy", "nope"}, "deployment/nope in namespace " + ns},
		{[]string{"authz", "-n", ns, "widget/x"}, `unknown resource kind "widget"`},
	} {
		if _, _, err := run(t, "", append(tc.args, "--kubeconfig", c.Kubeconfig())...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestImpersonation: --as makes the API server judge the requests as that user.
func TestImpersonation(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	_, _, err := run(t, "", "viz", "stat", "deploy", "-n", ns, "-t", "1ms", "--kubeconfig", c.Kubeconfig(), "--as", "mallory", "--as-group", "outsiders")
	if err == nil || !strings.Contains(err.Error(), `User "mallory" cannot`) {
		t.Errorf("stat as mallory: err = %v", err)
	}
}
