package command

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestInjectOverrideFlags checks that each --proxy-* and other override flag writes
// Linkerd's annotation on the pod templates (golden), that --manual turns them into the
// injected pod (the debug sidecar, a classic sidecar, the admin port), and that a value the
// injector cannot use is refused naming the annotation.
func TestInjectOverrideFlags(t *testing.T) {
	args := []string{"inject", "--proxy-cpu-request", "100m", "--proxy-cpu-limit", "1", "--proxy-memory-request", "20Mi",
		"--proxy-memory-limit", "250Mi", "--proxy-log-level", "debug", "--proxy-log-format", "json", "--proxy-uid", "2103",
		"--proxy-gid", "2103", "--proxy-image", "example.com/proxy", "--proxy-version", "v9", "--init-image", "example.com/init",
		"--init-image-version", "v9", "--image-pull-policy", "Always", "--admin-port", "5191", "--control-port", "5190",
		"--inbound-port", "5143", "--outbound-port", "5140", "--skip-subnets", "10.9.0.0/16", "--opaque-ports", "3306,5432",
		"--close-wait-timeout", "1m", "--default-inbound-policy", "deny", "--access-log", "json",
		"--wait-before-exit-seconds", "5", "--shutdown-grace-period", "30s", "--enable-debug-sidecar",
		"--enable-external-profiles", "--native-sidecar=false", "--ingress", "testdata/workloads.yaml"}
	out, _, err := run(t, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "inject-overrides.golden.yaml", out)

	manual, _, err := run(t, "", "inject", "--manual", "--identity-trust-anchors-file", "testdata/anchors.pem",
		"--enable-debug-sidecar", "--native-sidecar=false", "--admin-port", "5191", "--opaque-ports", "3306", "testdata/tree/a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"name: linkerd-debug", "containerPort: 5191", "value: 0.0.0.0:5191", "config.linkerd.io/opaque-ports: \"3306\"",
		"config.linkerd.io/proxy-enable-native-sidecar: \"false\""} {
		if !strings.Contains(manual, s) {
			t.Errorf("manual injection lacks %q:\n%s", s, manual)
		}
	}
	if strings.Contains(manual, "restartPolicy: Always") {
		t.Error("--native-sidecar=false injected a native sidecar")
	}

	_, _, err = run(t, "", "inject", "--manual", "--identity-trust-anchors-file", "testdata/anchors.pem", "--admin-port", "http", "testdata/tree/a.yaml")
	if err == nil || !strings.Contains(err.Error(), "config.linkerd.io/admin-port") {
		t.Errorf("bad --admin-port: %v, want an error naming config.linkerd.io/admin-port", err)
	}
	if _, _, err := run(t, "", "inject", "--proxy-uid", "", "testdata/tree/a.yaml"); err == nil || !strings.Contains(err.Error(), "--proxy-uid") {
		t.Errorf("empty --proxy-uid: %v", err)
	}
}

// TestInjectInputs checks files, several arguments, directories (only their top level
// without -r), URLs (a loopback server) and stdin, for inject and uninject, and that an
// unreadable input is an error naming it.
func TestInjectInputs(t *testing.T) {
	manifest, err := os.ReadFile("testdata/tree/a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/a.yaml" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(manifest)
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name string
		args []string
		want []string // reported lines
		not  []string
	}{
		{"directory top level", []string{"testdata/tree"}, []string{`deployment "alpha" injected`}, []string{"beta"}},
		{"directory recursive", []string{"-r", "testdata/tree"}, []string{`deployment "alpha" injected`, `pod "beta" injected`}, nil},
		{"url and file", []string{srv.URL + "/a.yaml", "testdata/tree/sub/b.yml"}, []string{`deployment "alpha" injected`, `pod "beta" injected`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, report, err := run(t, "", append([]string{"inject"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(report, w) {
					t.Errorf("report lacks %q:\n%s", w, report)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(report, n) || strings.Contains(out, n) {
					t.Errorf("output mentions %q:\n%s", n, report)
				}
			}
			if strings.Count(out, "linkerd.io/inject: enabled") != len(tc.want) {
				t.Errorf("%d injected templates, want %d:\n%s", strings.Count(out, "linkerd.io/inject: enabled"), len(tc.want), out)
			}
			un, report, err := run(t, out, "uninject", "-")
			if err != nil || strings.Contains(un, "linkerd.io/inject") || !strings.Contains(report, "uninjected") {
				t.Errorf("uninject of the result: %v\n%s\n%s", err, report, un)
			}
		})
	}
	if _, report, err := run(t, "", "uninject", "-r", "testdata/tree"); err != nil || !strings.Contains(report, `pod "beta" skipped: not injected`) {
		t.Errorf("uninject -r: %v\n%s", err, report)
	}
	for _, tc := range []struct{ arg, want string }{
		{srv.URL + "/missing.yaml", "404"},
		{"testdata/tree/sub/none", "no such file"},
	} {
		_, _, err := run(t, "", "inject", tc.arg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("inject %s: %v, want an error containing %q", tc.arg, err, tc.want)
		}
	}
	empty := t.TempDir()
	if _, _, err := run(t, "", "inject", empty); err == nil || !strings.Contains(err.Error(), "no .yaml") {
		t.Errorf("empty directory: %v", err)
	}
}

// TestVersionProxyVerboseAPIAddr checks `linkerd version --proxy` (proxy versions of the
// meshed pods of a namespace, counted), the global --verbose (each Kubernetes request on
// stderr) and --api-addr (overrides the kubeconfig's server) against a real API server.
func TestVersionProxyVerboseAPIAddr(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	for i, v := range []string{"v1", "v1", "v2"} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: ns,
			Labels:      map[string]string{"linkerd.io/control-plane-ns": "l5d-ver"},
			Annotations: map[string]string{"linkerd.io/proxy-version": v}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		c.CreatePod(t, pod)
	}
	out, errOut, err := run(t, "", "version", "--proxy", "-n", ns, "--verbose", "--kubeconfig", c.Kubeconfig(), "-L", "l5d-ver")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Proxy versions:\n\tv1 (2 pods)\n\tv2 (1 pod)\n"; !strings.HasSuffix(out, want) {
		t.Errorf("version --proxy:\n%s\nwant it to end with\n%s", out, want)
	}
	if !strings.Contains(errOut, "kubernetes request") || !strings.Contains(errOut, "/api/v1/namespaces/"+ns+"/pods") {
		t.Errorf("--verbose stderr lacks the pods request:\n%s", errOut)
	}
	out, errOut, _ = run(t, "", "version", "--verbose", "--api-addr", "https://127.0.0.1:1", "--kubeconfig", c.Kubeconfig(), "-L", "l5d-ver")
	if !strings.Contains(out, "Server version: unavailable") || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("--api-addr not used:\n%s\n%s", out, errOut)
	}
}

// TestPrune installs the control plane on a real API server, adds a ConfigMap and a
// ClusterRole carrying its label that the charts do not render (what an older version left
// behind), and checks that `linkerd prune` lists exactly those two.
func TestPrune(t *testing.T) {
	c := kube.Shared(t)
	ns := "l5d-prune"
	kc := c.Kubeconfig()
	manifest, _, err := run(t, "", "install", "-L", ns)
	if err != nil {
		t.Fatal(err)
	}
	crds, _, err := run(t, "", "install", "--crds")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", crds)
	c.Apply(t, ns, manifest)
	out, _, err := run(t, "", "prune", "--kubeconfig", kc, "-L", ns)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("prune right after install: %v\n%s", err, out)
	}
	c.Apply(t, ns, `apiVersion: v1
kind: ConfigMap
metadata:
  name: linkerd-old-config
  labels: {linkerd.io/control-plane-ns: `+ns+`}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: linkerd-`+ns+`-old-role
  labels: {linkerd.io/control-plane-ns: `+ns+`}
rules: []
`)
	out, _, err = run(t, "", "prune", "--kubeconfig", kc, "-L", ns)
	if err != nil {
		t.Fatal(err)
	}
	want := "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: linkerd-" + ns + "-old-role\n" +
		"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: linkerd-old-config\n  namespace: " + ns + "\n"
	if out != want {
		t.Errorf("prune:\n%s\nwant\n%s", out, want)
	}
	if _, _, err := run(t, "", "prune", "--kubeconfig", kc, "-L", "l5d-prune-none"); err == nil || !strings.Contains(err.Error(), "no control plane to prune in namespace l5d-prune-none") {
		t.Errorf("prune without a control plane: %v", err)
	}
}
