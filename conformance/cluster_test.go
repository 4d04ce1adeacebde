package conformance

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/localcluster"
)

// gatewayAPICRDs are the standard channel's CRDs (plural names) the suite's client lists
// and the mesh tests create objects of; the suite reads the bundle version and channel
// from their annotations for the report.
var gatewayAPICRDs = []string{
	"gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants",
	"backendtlspolicies", "listenersets", "tcproutes", "tlsroutes", "udproutes",
}

// startCluster brings up a local cluster of real nodes (containerd and the kubelet, so the
// suite can exec its client in the echo pods) with every image of root's bin/ (l5d's,
// echo-advanced, pause) in its registry, and the Gateway API CRDs applied. The cluster is
// closed when t ends; its logs stay under runDir.
func startCluster(t *testing.T, root, runDir string) *localcluster.Cluster {
	t.Helper()
	plugins, err := exec.Command(filepath.Join(root, "tools/cni-plugins/build.sh")).Output()
	if err != nil {
		t.Fatalf("tools/cni-plugins/build.sh: %v", err)
	}
	logFile, err := os.Create(filepath.Join(runDir, "cluster.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	// The cluster's informers (cluster DNS, the hosts file) live as long as ctx: until
	// the test ends, after Close (cleanups run last-registered first).
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	began := time.Now()
	c, err := localcluster.Up(ctx, localcluster.Options{
		RunDir:     filepath.Join(runDir, "run"),
		BinDirs:    []string{filepath.Join(root, "bin")},
		CNIPlugins: strings.TrimSpace(string(plugins)),
		Kubelet:    true,
		L5DImages:  root,
		Runtime:    os.Getenv("L5D_TEST_RUNTIME"),
		Logger:     slog.New(slog.NewTextHandler(logFile, nil)),
	})
	if err != nil {
		t.Fatalf("starting the local cluster (logs in %s): %v", runDir, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the local cluster: %v", err)
		}
	})
	t.Logf("cluster of real nodes up in %v (run directory %s)", time.Since(began).Round(time.Second), runDir)
	c.Kube().ApplyGatewayAPICRDs(t, gatewayAPICRDs...)
	return c
}

// installL5d installs the control plane with the linkerd CLI at bin, as a user would:
// install --crds and install piped to kubectl apply, then check --wait.
func installL5d(t *testing.T, c *localcluster.Cluster, bin string) {
	t.Helper()
	linkerd := filepath.Join(bin, "linkerd")
	began := time.Now()
	crds := run(t, c, nil, linkerd, "install", "--crds")
	run(t, c, crds, filepath.Join(kube.BinDir(), "kubectl"), "apply", "-f", "-")
	cp := run(t, c, nil, linkerd, "install")
	run(t, c, cp, filepath.Join(kube.BinDir(), "kubectl"), "apply", "-f", "-")
	run(t, c, nil, linkerd, "check", "--wait", "8m")
	t.Logf("l5d installed and checked in %v", time.Since(began).Round(time.Second))
}

// run runs a command with the cluster's admin kubeconfig and stdin, failing t with its
// output when it fails, and returns its stdout.
func run(t *testing.T, c *localcluster.Cluster, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig())
	var stdout, stderr bytes.Buffer
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), err, tail(stdout.String()), stderr.String())
	}
	return stdout.Bytes()
}

// tail is the last 4 KiB of s, enough to show why a long command failed.
func tail(s string) string {
	const max = 4 << 10
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("[... %d bytes]\n%s", len(s)-max, s[len(s)-max:])
}
