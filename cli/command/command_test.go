package command

import (
	"bytes"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// run executes the CLI with args and stdin, returning stdout, stderr and the error.
func run(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := Root(&out, &errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s; rerun with -update and review the diff\n%s", p, got)
	}
}

func TestInjectGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"inject.golden.yaml", []string{"inject", "testdata/workloads.yaml"}},
		{"inject-ingress.golden.yaml", []string{"inject", "--ingress", "--skip-inbound-ports", "25,587", "--skip-outbound-ports", "3306", "testdata/workloads.yaml"}},
		{"inject-manual.golden.yaml", []string{"inject", "--manual", "--identity-trust-anchors-file", "testdata/anchors.pem", "testdata/workloads.yaml"}},
		{"inject-manual.golden.json", []string{"inject", "--manual", "--identity-trust-anchors-file", "testdata/anchors.pem", "testdata/daemonset.json"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, report, err := run(t, "", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, out)
			for _, line := range []string{`deployment "web" injected`, `cronjob "nightly" injected`, `pod "solo" injected`, `statefulset "db" skipped`} {
				if strings.HasSuffix(tc.golden, ".yaml") && !strings.Contains(report, line) {
					t.Errorf("report lacks %q:\n%s", line, report)
				}
			}
		})
	}
}

func TestUninjectRemovesManualInjection(t *testing.T) {
	manual, _, err := run(t, "", "inject", "--manual", "--identity-trust-anchors-file", "testdata/anchors.pem", "testdata/workloads.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(manual, "name: linkerd-proxy") {
		t.Fatal("--manual output has no proxy")
	}
	un, report, err := run(t, manual, "uninject", "-")
	if err != nil {
		t.Fatal(err)
	}
	annotated, _, err := run(t, "", "inject", "testdata/workloads.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plain, _, err := run(t, annotated, "uninject", "-")
	if err != nil {
		t.Fatal(err)
	}
	if un != plain {
		t.Errorf("uninject of a manual injection differs from uninject of an annotation-only injection:\n%s\n---- vs ----\n%s", un, plain)
	}
	for _, s := range []string{"linkerd-proxy", "linkerd-init", "linkerd-identity", "linkerd.io/inject: enabled", "trust-root-sha256"} {
		if strings.Contains(un, s) {
			t.Errorf("uninjected output still contains %q", s)
		}
	}
	if !strings.Contains(report, `deployment "web" uninjected`) {
		t.Errorf("report: %s", report)
	}
}

func TestInjectBadInput(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"not yaml", "{{{", "document 1"},
		{"no kind", "foo: bar\n", "apiVersion and kind are required"},
		{"second doc bad", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n: : :\n", "document 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, tc.in, "inject", "-")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, _, err := run(t, "", "inject", "/nonexistent.yaml"); err == nil {
		t.Error("missing file accepted")
	}
}

// TestAgainstCluster runs version and check through the CLI against a real API server.
func TestAgainstCluster(t *testing.T) {
	c := kube.Shared(t)
	kc := c.Kubeconfig()
	out, _, err := run(t, "", "version", "--kubeconfig", kc, "-L", "l5d-none")
	if err != nil || out != "Client version: dev\nServer version: unavailable\n" {
		t.Errorf("version before install: %q %v", out, err)
	}
	out, _, err = run(t, "", "check", "--pre", "--kubeconfig", kc, "-L", "l5d-cli")
	if err != nil || !strings.Contains(out, "Status check results are √") {
		t.Errorf("check --pre on an empty cluster: %v\n%s", err, out)
	}
	install, _, err := run(t, "", "install", "-L", "l5d-cli")
	if err != nil {
		t.Fatal(err)
	}
	crds, _, err := run(t, "", "install", "--crds")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", crds)
	c.Apply(t, "l5d-cli", install)
	out, _, err = run(t, "", "version", "--kubeconfig", kc, "-L", "l5d-cli")
	if err != nil || !strings.Contains(out, "Server version: dev") {
		t.Errorf("version after install: %q %v", out, err)
	}
	out, _, err = run(t, "", "check", "-o", "json", "--wait", "0s", "--kubeconfig", kc, "-L", "l5d-cli")
	if err == nil || ExitCode(err) == 0 {
		t.Error("check succeeds with no control-plane pods running")
	}
	if !strings.Contains(out, `"categoryName": "linkerd-identity"`) || !strings.Contains(out, `"success": false`) {
		t.Errorf("json output:\n%s", out)
	}
	if _, _, err := run(t, "", "check", "-o", "yaml"); err == nil {
		t.Error("bad --output accepted")
	}
}

// TestLifecycle covers upgrade (keeps the identity, applies --ha/--set over the stored
// values), uninstall (lists what to delete) and profile --template (accepted by the API
// server with the ServiceProfile CRD installed).
func TestLifecycle(t *testing.T) {
	c := kube.Shared(t)
	kc := c.Kubeconfig()
	const ns = "l5d-life"
	crds, _, err := run(t, "", "install", "--crds")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", crds)
	install, _, err := run(t, "", "install", "-L", ns, "--set", "proxy.logLevel=debug", "--set", "profileValidator.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, ns, install)
	issuer, err := c.Client().CoreV1().Secrets(ns).Get(t.Context(), "linkerd-identity-issuer", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	if len(issuer.Data["crt.pem"]) == 0 || len(issuer.Data["key.pem"]) == 0 {
		t.Fatalf("install wrote an issuer Secret without crt.pem and key.pem (keys: %v)", keysOf(issuer.Data))
	}
	up, _, err := run(t, "", "upgrade", "--ha", "--set", "controllerLogLevel=debug", "-L", ns, "--kubeconfig", kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		base64.StdEncoding.EncodeToString(issuer.Data["crt.pem"]),
		base64.StdEncoding.EncodeToString(issuer.Data["key.pem"]),
		"value: \"debug\"",   // stored proxy.logLevel kept
		"- -log-level=debug", // new --set applied
		"replicas: 3",        // --ha applied over the stored controllerReplicas
		"kind: PodDisruptionBudget",
	} {
		if !strings.Contains(up, want) {
			t.Errorf("upgrade output lacks %q", want)
		}
	}
	c.Apply(t, ns, up)
	if _, _, err := run(t, "", "upgrade", "-L", "l5d-nothing", "--kubeconfig", kc); err == nil || !strings.Contains(err.Error(), "no control plane to upgrade") {
		t.Errorf("upgrade without a control plane: %v", err)
	}

	un, _, err := run(t, "", "uninstall", "-L", ns, "--kubeconfig", kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kind: ClusterRole\nmetadata:\n  name: linkerd-" + ns + "-identity",
		"kind: ClusterRoleBinding\nmetadata:\n  name: linkerd-" + ns + "-proxy-injector",
		"kind: MutatingWebhookConfiguration",
		"kind: ValidatingWebhookConfiguration\nmetadata:\n  name: linkerd-sp-validator-webhook-config",
		"kind: CustomResourceDefinition\nmetadata:\n  name: serviceprofiles.linkerd.io",
		"kind: Namespace\nmetadata:\n  name: " + ns,
	} {
		if !strings.Contains(un, want) {
			t.Errorf("uninstall output lacks %q:\n%s", want, un)
		}
	}
	if strings.Contains(un, "linkerd-l5d-cli-") {
		t.Error("uninstall lists another control plane's objects")
	}

	pns := c.Namespace(t, kube.WithLabels(map[string]string{"config.linkerd.io/admission-webhooks": "disabled"}))
	prof, _, err := run(t, "", "profile", "--template", "web-svc", "-n", pns)
	if err != nil {
		t.Fatal(err)
	}
	objs := c.Apply(t, pns, prof)
	if len(objs) != 1 || objs[0].GetName() != "web-svc."+pns+".svc.cluster.local" {
		t.Errorf("profile template applied as %v", objs)
	}
	for _, args := range [][]string{
		{"profile", "--open-api", "../profile/testdata/petstore.yaml", "pets", "-n", pns},
		{"profile", "--proto", "../profile/testdata/greeter.proto", "greeter", "-n", pns},
	} {
		gen, _, err := run(t, "", args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		objs := c.Apply(t, pns, gen)
		routes, _, _ := unstructuredSlice(objs[0].Object, "spec", "routes")
		if len(objs) != 1 || routes < 3 {
			t.Errorf("%v: applied as %v", args, objs)
		}
	}
	if _, _, err := run(t, "", "profile", "--open-api", "-", "svc"); err == nil || !strings.Contains(err.Error(), "not an OpenAPI document") {
		t.Errorf("empty --open-api input: got %v", err)
	}
	if _, _, err := run(t, "", "profile", "--template", "--proto", "x.proto", "svc"); err == nil {
		t.Error("--template with --proto accepted")
	}
	if _, _, err := run(t, "", "profile", "--template", "Bad_Name"); err == nil {
		t.Error("invalid service name accepted")
	}
}

// TestCheckWait: check --wait keeps retrying until the control plane becomes ready.
func TestCheckWait(t *testing.T) {
	c := kube.Shared(t)
	const ns = "l5d-wait"
	install, _, err := run(t, "", "install", "-L", ns)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, ns, install)
	crds, _, err := run(t, "", "install", "--crds")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", crds)
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, _, err := run(t, "", "check", "--wait", "2m", "--kubeconfig", c.Kubeconfig(), "-L", ns)
		done <- result{out, err}
	}()
	for _, comp := range []string{"identity", "destination", "proxy-injector"} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "linkerd-" + comp, Namespace: ns,
				Labels: map[string]string{"linkerd.io/control-plane-component": comp}},
			Spec: corev1.PodSpec{ServiceAccountName: "linkerd-" + comp},
		}
		c.CreatePod(t, pod)
		c.SetPodStatus(t, ns, pod.Name, kube.PodStatus{Ready: true, IPs: []string{"10.244.8.1"}})
	}
	r := <-done
	if r.err != nil || !strings.Contains(r.out, "Status check results are √") {
		t.Errorf("check --wait did not succeed once pods became ready: %v\n%s", r.err, r.out)
	}
}

// unstructuredSlice returns the length of the list at path in obj.
func unstructuredSlice(obj map[string]any, path ...string) (int, bool, error) {
	l, ok, err := unstructured.NestedSlice(obj, path...)
	return len(l), ok, err
}

func keysOf(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
