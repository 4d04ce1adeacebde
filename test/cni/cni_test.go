// Package cni runs l5d's CNI mode end to end on a local cluster of one real node (kubelet
// and containerd, l5d's images built from bin/) whose containerd sets up pod networks with
// the node's CNI configuration (the standard bridge, host-local and loopback plugins):
// linkerd install-cni, linkerd install --linkerd-cni-enabled, linkerd
// check --linkerd-cni-enabled, the demo application meshed without any NET_ADMIN container
// and talking mTLS, and the network validator failing a pod clearly once the plugin has
// left the node's configuration.
package cni

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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/localcluster"
	"github.com/l5d-go/l5d/test/node"
)

const demoNS = "l5d-demo"

// env is the cluster and the commands the test runs against it.
type env struct {
	t       *testing.T
	ctx     context.Context
	c       *localcluster.Cluster
	runDir  string
	linkerd string
}

// run runs a command with the cluster's kubeconfig, feeding it stdin, and returns stdout.
func (e *env) run(stdin string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(e.ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.c.Kubeconfig())
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

func (e *env) mustRun(stdin, name string, args ...string) string {
	e.t.Helper()
	out, err := e.run(stdin, name, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// apply renders with the linkerd command and applies the result with kubectl.
func (e *env) apply(args ...string) {
	e.t.Helper()
	e.mustRun(e.mustRun("", e.linkerd, args...), filepath.Join(kube.BinDir(), "kubectl"), "apply", "-f", "-")
}

// eventually polls cond (which says what is still missing, or "") until it holds.
func (e *env) eventually(within time.Duration, what string, cond func() string) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		miss := cond()
		if miss == "" {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting until %s: %s", within, what, miss)
		}
		select {
		case <-e.ctx.Done():
			e.t.Fatalf("waiting until %s: %v", what, e.ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// chained returns the plugin types of the node's primary network.
func (e *env) chained() string {
	b, _ := os.ReadFile(filepath.Join(e.c.CNIConfDir(), "10-"+node.BridgeNetworkName+".conflist"))
	return string(b)
}

func setUp(t *testing.T) *env {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, containerd and the kubelet")
	}
	if os.Getenv("L5D_SKIP_KUBE") != "" {
		t.Skip("L5D_SKIP_KUBE is set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(root, "tools", "cni-plugins", "build.sh")).Output()
	if err != nil {
		t.Fatalf("tools/cni-plugins/build.sh: %v", err)
	}
	plugins := strings.TrimSpace(string(out))
	plugins = plugins[strings.LastIndex(plugins, "\n")+1:]
	runDir, err := os.MkdirTemp("", "l5d-cni-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(runDir, "cluster.log"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := localcluster.Up(ctx, localcluster.Options{
		RunDir: runDir, CNIPlugins: plugins, Kubelet: true, L5DImages: root,
		Logger: slog.New(slog.NewTextHandler(logFile, nil)),
	})
	if err != nil {
		t.Fatalf("starting the local cluster: %v", err)
	}
	e := &env{t: t, ctx: ctx, c: c, runDir: runDir, linkerd: filepath.Join(root, "bin", "linkerd")}
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpLogs()
		}
		c.Close()
		logFile.Close()
		if !t.Failed() {
			os.RemoveAll(runDir)
		}
	})
	return e
}

// dumpLogs prints the tail of every container log of the run.
func (e *env) dumpLogs() {
	logs := append(localcluster.PodLogFiles(e.runDir, "*"), filepath.Join(e.runDir, "cluster.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		e.t.Logf("==> %s\n%s", l, b)
	}
}

func TestCNIModeMeshesWithoutNetAdminAndTheValidatorCatchesAMissingPlugin(t *testing.T) {
	start := time.Now()
	e := setUp(t)
	client := e.c.Client()

	// The DaemonSet chains linkerd-cni into the node's configuration.
	e.apply("install-cni", "--dest-cni-net-dir", e.c.CNIConfDir(), "--dest-cni-bin-dir", e.c.CNIBinDir())
	e.eventually(2*time.Minute, "linkerd-cni is chained into the node's network", func() string {
		if conf := e.chained(); !strings.Contains(conf, `"type": "linkerd-cni"`) {
			return conf
		}
		return ""
	})
	e.mustRun("", e.linkerd, "check", "--pre", "--linkerd-cni-enabled", "--wait", "2m")

	e.apply("install", "--crds")
	e.apply("install", "--linkerd-cni-enabled")
	e.mustRun("", e.linkerd, "check", "--linkerd-cni-enabled", "--wait", "4m")
	t.Logf("control plane checked after %v", time.Since(start).Round(time.Second))

	app, err := os.ReadFile("../demo/app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e.mustRun(string(app), filepath.Join(kube.BinDir(), "kubectl"), "apply", "-f", "-")
	var pods []corev1.Pod
	e.eventually(4*time.Minute, "the demo's 4 pods are ready beside their proxies", func() string {
		list, err := client.CoreV1().Pods(demoNS).List(e.ctx, metav1.ListOptions{})
		if err != nil {
			return err.Error()
		}
		ready := 0
		for _, p := range list.Items {
			if podReady(&p) && hasContainer(&p, proxyconf.ProxyContainer) {
				ready++
			}
		}
		if ready != 4 {
			return fmt.Sprintf("%d of %d pods ready and meshed", ready, len(list.Items))
		}
		pods = list.Items
		return ""
	})
	var catalog string
	for _, p := range pods {
		if p.Labels["app"] == "catalog" {
			catalog = p.Name
		}
		if hasContainer(&p, proxyconf.InitContainer) || !hasContainer(&p, proxyconf.NetworkValidatorContainer) {
			t.Errorf("pod %s: init containers %v, want %s and no %s", p.Name, names(p.Spec.InitContainers), proxyconf.NetworkValidatorContainer, proxyconf.InitContainer)
		}
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			if sc := c.SecurityContext; sc != nil && sc.Capabilities != nil {
				for _, cap := range sc.Capabilities.Add {
					if cap == "NET_ADMIN" || cap == "NET_RAW" {
						t.Errorf("pod %s: container %s adds %s", p.Name, c.Name, cap)
					}
				}
			}
		}
	}
	webID := "web." + demoNS + ".serviceaccount.identity.linkerd.cluster.local"
	e.eventually(2*time.Minute, "catalog's proxy counts inbound mTLS requests from "+webID, func() string {
		b, err := client.CoreV1().RESTClient().Get().
			AbsPath("/api/v1/namespaces", demoNS, "pods", catalog+":4191", "proxy", "metrics").DoRaw(e.ctx)
		if err != nil {
			return err.Error()
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "request_total{") && strings.Contains(l, `direction="inbound"`) &&
				strings.Contains(l, `tls="true"`) && strings.Contains(l, `client_id="`+webID+`"`) && !strings.HasSuffix(l, " 0") {
				return ""
			}
		}
		return "no such request_total line"
	})
	t.Logf("demo meshed over mTLS after %v", time.Since(start).Round(time.Second))

	// Without the DaemonSet the plugin leaves the node's configuration, and a new meshed
	// pod's validator fails it, saying why.
	if err := client.AppsV1().DaemonSets("linkerd-cni").Delete(e.ctx, "linkerd-cni", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually(time.Minute, "linkerd-cni leaves the node's network", func() string {
		if conf := e.chained(); strings.Contains(conf, "linkerd-cni") {
			return conf
		}
		return ""
	})
	if _, err := client.CoreV1().Pods(demoNS).Create(e.ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "unprotected"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "ghcr.io/l5d-go/demo-catalog:v1",
		}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const want = "the linkerd-cni plugin did not configure this pod's network"
	e.eventually(time.Minute, "the validator fails the pod naming linkerd-cni", func() string {
		p, err := client.CoreV1().Pods(demoNS).Get(e.ctx, "unprotected", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		for _, cs := range p.Status.InitContainerStatuses {
			if cs.Name != proxyconf.NetworkValidatorContainer {
				continue
			}
			for i, st := range []corev1.ContainerState{cs.State, cs.LastTerminationState} {
				if term := st.Terminated; term != nil && term.ExitCode == 1 {
					logText, _ := client.CoreV1().Pods(demoNS).GetLogs("unprotected", &corev1.PodLogOptions{Container: cs.Name, Previous: i == 1}).DoRaw(e.ctx)
					if strings.Contains(term.Message, want) || strings.Contains(string(logText), want) {
						if podReady(p) {
							return "the pod is ready although its validator failed"
						}
						return ""
					}
					return fmt.Sprintf("exit 1 without the message: %q; log %q", term.Message, logText)
				}
			}
		}
		return fmt.Sprintf("phase %s, init containers %+v", p.Status.Phase, p.Status.InitContainerStatuses)
	})
	t.Logf("the whole test took %v", time.Since(start).Round(time.Second))
}

func hasContainer(p *corev1.Pod, name string) bool {
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == name {
			return true
		}
	}
	return false
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
