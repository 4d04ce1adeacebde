// Package e2e runs l5d the way a user meets it, on a whole local cluster (test/localcluster):
// install with the linkerd CLI, check, and mesh the demo application.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/localcluster"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const demoNS = "l5d-demo"

// TestInstallCheckInjectAndMTLS installs the control plane with `linkerd install`, waits
// for `linkerd check` to pass, deploys the demo application into a namespace annotated
// linkerd.io/inject: enabled, and asserts that every pod runs its app beside a ready proxy
// and that the catalog's proxy sees the web front end's requests over mTLS with web's
// identity.
func TestInstallCheckInjectAndMTLS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root (pods are network namespaces)")
	}
	if os.Getenv("L5D_SKIP_KUBE") != "" {
		t.Skip("e2e: L5D_SKIP_KUBE is set")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bins := podBinaries(t, filepath.Join(root, "bin"))
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	runDir := t.TempDir()
	c, err := localcluster.Up(ctx, localcluster.Options{RunDir: runDir, BinDirs: []string{bins}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, runDir)
		}
		c.Close()
	})
	run := func(stdin []byte, name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig())
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s\n%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	linkerd := filepath.Join(root, "bin", "linkerd")
	kubectl := filepath.Join(kube.BinDir(), "kubectl")

	run(nil, linkerd, "check", "--pre")
	run([]byte(run(nil, linkerd, "install", "--crds")), kubectl, "apply", "-f", "-")
	run([]byte(run(nil, linkerd, "install")), kubectl, "apply", "-f", "-")
	run(nil, linkerd, "check", "--wait", "5m")

	app, err := os.ReadFile(filepath.Join(root, "test", "demo", "app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	run(app, kubectl, "apply", "-f", "-")
	pods := waitMeshedAndReady(ctx, t, c, 4)
	run(nil, linkerd, "check", "--proxy", "-n", demoNS, "--wait", "2m")

	var catalog string
	for _, p := range pods {
		if p.Labels["app"] == "catalog" {
			catalog = p.Name
		}
	}
	webID := "web." + demoNS + ".serviceaccount.identity.linkerd.cluster.local"
	var last string
	for ctx.Err() == nil {
		raw, err := c.Client().CoreV1().RESTClient().Get().
			AbsPath("/api/v1/namespaces", demoNS, "pods", catalog+":4191", "proxy", "metrics").DoRaw(ctx)
		if err == nil {
			last = string(raw)
			if meshedRequestsFrom(last, webID) {
				return
			}
		}
		time.Sleep(time.Second) // poll interval
	}
	t.Fatalf("catalog's proxy never counted an inbound mTLS request from %s; last metrics:\n%s", webID, grepLines(last, "request_total"))
}

// podBinaries copies bin/ into a directory every container user can read and execute
// (the proxy runs as uid 2102).
func podBinaries(t *testing.T, bin string) string {
	t.Helper()
	entries, err := os.ReadDir(bin)
	if err != nil || len(entries) == 0 {
		t.Fatalf("e2e needs the built binaries in %s (make build): %v", bin, err)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("l5d-e2e-bin-%d", os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(bin, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitMeshedAndReady waits until the demo namespace has n pods, each Ready with a
// linkerd-proxy container (injected) and every container ready.
func waitMeshedAndReady(ctx context.Context, t *testing.T, c *localcluster.Cluster, n int) []corev1.Pod {
	t.Helper()
	var why string
	for ctx.Err() == nil {
		list, err := c.Client().CoreV1().Pods(demoNS).List(ctx, metav1.ListOptions{})
		if err == nil {
			why = ""
			if len(list.Items) != n {
				why = fmt.Sprintf("%d pods, want %d", len(list.Items), n)
			}
			for _, p := range list.Items {
				if w := notMeshedReady(&p); w != "" {
					why += p.Name + ": " + w + "; "
				}
			}
			if why == "" {
				return list.Items
			}
		}
		time.Sleep(time.Second) // poll interval
	}
	t.Fatalf("demo pods not meshed and ready: %s", why)
	return nil
}

func notMeshedReady(p *corev1.Pod) string {
	proxy := false
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		proxy = proxy || c.Name == "linkerd-proxy"
	}
	if !proxy {
		return "not injected"
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return ""
		}
	}
	return "not ready"
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

// dumpLogs prints the tail of every container log of a failed run.
func dumpLogs(t *testing.T, runDir string) {
	logs, _ := filepath.Glob(filepath.Join(runDir, "pods", "*", "logs", "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if len(b) > 2000 {
			b = b[len(b)-2000:]
		}
		t.Logf("== %s\n%s", l, b)
	}
}
