package command

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/cli/jaegerext"
	"github.com/l5d-go/l5d/cli/vizext"
	"github.com/l5d-go/l5d/test/kube"
)

// TestJaegerLifecycle installs the jaeger extension into a real API server after a control
// plane's linkerd-config, as a user would: install keeps the mesh's trust domain in the
// collector's identity, every object is accepted, check finds the namespace and the
// webhook (and no running injector: nothing runs pods here), and uninstall lists exactly
// what install created that deleting the namespace would not remove, and the namespace.
func TestJaegerLifecycle(t *testing.T) {
	c := kube.Shared(t)
	kc := c.Kubeconfig()
	const cp = "l5d-jaegercp"
	crds, _, err := run(t, "", "install", "--crds") // the chart's Servers and policies
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", crds)
	if _, _, err := run(t, "", "jaeger", "install", "-L", cp, "--kubeconfig", kc); err == nil || !strings.Contains(err.Error(), "--ignore-cluster") {
		t.Fatalf("jaeger install without a control plane: err %v, want advice naming --ignore-cluster", err)
	}
	optOut := map[string]string{"config.linkerd.io/admission-webhooks": "disabled"}
	for _, ns := range []string{cp, jaegerext.DefaultNamespace} {
		if _, err := c.Client().CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: optOut}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.Apply(t, cp, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: linkerd-config\ndata:\n  values: |\n    clusterDomain: example.org\n    identityTrustDomain: mesh.example\n")
	out, _, err := run(t, "", "jaeger", "install", "-L", cp, "--kubeconfig", kc, "--set", "webhook.replicas=2")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-linkerd-namespace=" + cp,
		"-trust-domain=mesh.example",
		"-collector-svc-addr=jaeger.linkerd-jaeger:4317",
		"-collector-svc-account=jaeger",
		"replicas: 2",
		"jaeger-injector:" + Version,
		"image: jaegertracing/all-in-one:1.75.0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("jaeger install output lacks %q", want)
		}
	}
	applied := c.Apply(t, jaegerext.DefaultNamespace, out)
	rendered, err := vizext.Rendered([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(rendered) {
		t.Fatalf("applied %d of %d rendered objects", len(applied), len(rendered))
	}

	report, _, _ := run(t, "", "jaeger", "check", "--kubeconfig", kc)
	for _, want := range []string{"√ linkerd-jaeger extension Namespace exists", "√ jaeger injector webhook is configured", "× jaeger injector pods are running"} {
		if !strings.Contains(report, want) {
			t.Errorf("jaeger check lacks %q:\n%s", want, report)
		}
	}

	un, _, err := run(t, "", "jaeger", "uninstall", "--kubeconfig", kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kind: ClusterRole\nmetadata:\n  name: linkerd-jaeger-injector\n",
		"kind: ClusterRoleBinding\nmetadata:\n  name: linkerd-jaeger-injector\n",
		"kind: MutatingWebhookConfiguration\nmetadata:\n  name: linkerd-jaeger-injector-webhook-config\n",
		"kind: Namespace\nmetadata:\n  name: linkerd-jaeger\n",
	} {
		if !strings.Contains(un, want) {
			t.Errorf("jaeger uninstall lacks\n%s\nin:\n%s", want, un)
		}
	}
	if strings.Contains(un, "extension: viz") || strings.Contains(un, "linkerd-tap") {
		t.Errorf("jaeger uninstall lists another extension's objects:\n%s", un)
	}
}

// TestJaegerDashboardErrors checks bad flags and a cluster without the extension fail
// naming the problem.
func TestJaegerDashboardErrors(t *testing.T) {
	c := kube.Shared(t)
	kc := c.Kubeconfig()
	ns := c.Namespace(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--show", "grafana"}, `--show "grafana"`},
		{[]string{"--port", "70000"}, "--port 70000"},
		{[]string{"--jaeger-namespace", ns}, "jaeger is not installed in namespace " + ns},
	} {
		_, _, err := run(t, "", append([]string{"jaeger", "dashboard", "--kubeconfig", kc, "--show", "url"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("jaeger dashboard %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
