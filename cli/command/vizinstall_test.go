package command

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/cli/vizext"
	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestVizLifecycle installs the viz extension into a real API server as a user would (after
// the control plane), then checks that prune finds only what the values no longer render
// and that uninstall lists exactly the objects install created that deleting the
// namespace would not remove, and the namespace.
func TestVizLifecycle(t *testing.T) {
	c := kube.Shared(t)
	kc := c.Kubeconfig()
	const cp = "l5d-vizcp"
	crds, _, err := run(t, "", "install", "--crds")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", crds)
	if _, _, err := run(t, "", "viz", "install", "-L", cp, "--kubeconfig", kc); err == nil || !strings.Contains(err.Error(), "--ignore-cluster") {
		t.Fatalf("viz install without a control plane: err %v, want advice naming --ignore-cluster", err)
	}
	// viz install reads the control plane's linkerd-config; the policy webhooks of
	// control planes other tests installed must leave the extension's namespace alone, as
	// they would skip a namespace labelled so.
	optOut := map[string]string{"config.linkerd.io/admission-webhooks": "disabled"}
	for _, ns := range []string{cp, vizext.DefaultNamespace} {
		if _, err := c.Client().CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: optOut}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.Apply(t, cp, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: linkerd-config\ndata:\n  values: |\n    clusterDomain: example.org\n")

	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte("metricsAPI:\n  replicas: 2\nprometheus:\n  args:\n    storage.tsdb.retention.time: 2h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	viz, _, err := run(t, "", "viz", "install", "-L", cp, "--kubeconfig", kc, "-f", values,
		"--set", "prometheus.args.storage\\.tsdb\\.retention\\.time=3h", "--set-string", "defaultLogLevel=debug")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-controller-namespace=" + cp,              // the control plane named by -L
		"-cluster-domain=example.org",              // the control plane's cluster domain
		"replicas: 2",                              // -f values
		"--storage.tsdb.retention.time=3h",         // --set after -f
		"-log-level=debug",                         // --set-string
		"metrics-api:" + Version,                   // the CLI's version
		"regex: linkerd-proxy;linkerd-admin;" + cp, // Prometheus keeps this control plane's proxies
	} {
		if !strings.Contains(viz, want) {
			t.Errorf("viz install output lacks %q", want)
		}
	}
	applied := c.Apply(t, vizext.DefaultNamespace, viz)
	rendered, err := vizext.Rendered([]byte(viz))
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(rendered) {
		t.Fatalf("applied %d of %d rendered objects", len(applied), len(rendered))
	}

	// Nothing to prune with the same values; Prometheus' objects once it is turned off; a
	// labelled object of an older version always.
	if out, _, err := run(t, "", "viz", "prune", "-L", cp, "--kubeconfig", kc, "-f", values); err != nil || out != "" {
		t.Errorf("prune right after install: %q, %v", out, err)
	}
	c.Apply(t, "", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: linkerd-linkerd-viz-old\n  labels: {linkerd.io/extension: viz}\nrules: []\n")
	out, _, err := run(t, "", "viz", "prune", "-L", cp, "--kubeconfig", kc, "--set", "prometheus.enabled=false", "--set", "prometheusUrl=http://prom.example:9090")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kind: ClusterRole\nmetadata:\n  name: linkerd-linkerd-viz-old\n",
		"kind: ClusterRole\nmetadata:\n  name: linkerd-linkerd-viz-prometheus\n",
		"kind: ServiceProfile\nmetadata:\n  name: prometheus.linkerd-viz.svc.example.org\n  namespace: linkerd-viz\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("prune output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "metrics-api") || strings.Contains(out, "kind: Namespace") {
		t.Errorf("prune lists objects the values still render:\n%s", out)
	}
	del := func(r vizext.Ref) {
		gv, _ := schema.ParseGroupVersion(r.APIVersion)
		res := map[string]string{"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings", "APIService": "apiservices", "MutatingWebhookConfiguration": "mutatingwebhookconfigurations", "Namespace": "namespaces"}[r.Kind]
		if res == "" {
			t.Fatalf("unexpected kind %s", r.Kind)
		}
		if err := c.Dynamic().Resource(gv.WithResource(res)).Delete(context.Background(), r.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	del(vizext.Ref{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Name: "linkerd-linkerd-viz-old"})

	// Uninstall: exactly the cluster-scoped objects, the policy objects and the tap API's
	// RoleBinding in kube-system install rendered,
	// then the namespace, which takes the rest with it.
	un, _, err := run(t, "", "viz", "uninstall", "--kubeconfig", kc)
	if err != nil {
		t.Fatal(err)
	}
	listed, err := vizext.Rendered([]byte(un))
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, r := range rendered {
		switch r.Kind {
		case "Namespace", "ClusterRole", "ClusterRoleBinding", "APIService", "MutatingWebhookConfiguration", "RoleBinding", "Server", "AuthorizationPolicy", "MeshTLSAuthentication", "NetworkAuthentication", "ServiceProfile":
			want = append(want, r.Kind+"/"+r.Namespace+"/"+r.Name)
		}
	}
	for _, r := range listed {
		got = append(got, r.Kind+"/"+r.Namespace+"/"+r.Name)
	}
	sort.Strings(want)
	if last := listed[len(listed)-1]; last.Kind != "Namespace" || last.Name != vizext.DefaultNamespace {
		t.Errorf("uninstall does not end with the namespace: %v", last)
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("uninstall lists\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range listed {
		if r.Namespace == "" {
			del(r)
		}
	}
	if _, _, err := run(t, "", "viz", "uninstall", "--kubeconfig", kc); err == nil {
		// The namespace may still be terminating (this API server runs no namespace
		// controller); its cluster-scoped objects must be gone.
		out, _, _ := run(t, "", "viz", "uninstall", "--kubeconfig", kc)
		for _, kind := range []string{"kind: ClusterRole\n", "kind: ClusterRoleBinding\n"} {
			if strings.Contains(out, kind) {
				t.Errorf("after deleting what uninstall listed, it still lists:\n%s", out)
			}
		}
	}
}

func TestVizAllowScrapes(t *testing.T) {
	c := kube.Shared(t)
	crds, _, err := run(t, "", "install", "--crds")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", crds)
	ns := c.Namespace(t, kube.WithLabels(map[string]string{"config.linkerd.io/admission-webhooks": "disabled"}))
	out, _, err := run(t, "", "viz", "allow-scrapes", "--namespace", ns)
	if err != nil {
		t.Fatal(err)
	}
	objs := c.Apply(t, ns, out)
	var names []string
	for _, o := range objs {
		names = append(names, o.GetKind()+"/"+o.GetName())
	}
	if got := strings.Join(names, " "); got != "Server/proxy-admin HTTPRoute/proxy-metrics AuthorizationPolicy/prometheus-scrape HTTPRoute/proxy-probes AuthorizationPolicy/proxy-probes" {
		t.Errorf("allow-scrapes applied %s", got)
	}
	// --ignore-cluster renders without reaching any cluster.
	out, _, err = run(t, "", "viz", "install", "--ignore-cluster", "--kubeconfig", "/nonexistent/kubeconfig")
	if err != nil || !strings.Contains(out, "-controller-namespace=linkerd") || !strings.Contains(out, "kind: Namespace") {
		t.Errorf("viz install --ignore-cluster: %v\n%.500s", err, out)
	}
	for _, args := range [][]string{
		{"viz", "allow-scrapes"},
		{"viz", "allow-scrapes", "--namespace", "Not_A_Namespace"},
		{"viz", "allow-scrapes", "--namespace", ns, "--bogus"},
		{"viz", "install", "--ignore-cluster", "--set", "prometheus.enabled=false"},
		{"viz", "install", "--ignore-cluster", "-f", "/nonexistent/values.yaml"},
	} {
		if _, _, err := run(t, "", args...); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
}
