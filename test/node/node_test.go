package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/netns"
	"github.com/l5d-go/l5d/test/node"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{ControllerManager: true, Scheduler: true}) }

// testNode is a running agent with its cluster, network and a fresh namespace.
type testNode struct {
	c      *kube.Cluster
	client kubernetes.Interface
	net    *netns.Network
	name   string
	ns     string
	runDir string
}

// hostsLine is in the hosts file every container sees at /etc/hosts.
const hostsLine = "10.96.7.7 backend.example"

// testClusterDNS is the cluster DNS server the agent names in pods' resolv.conf (nothing
// answers there in these tests; the file's content is what they check).
var testClusterDNS = netip.MustParseAddr("10.96.0.10")

// startNode builds testapp, starts an agent for a node of its own and makes a namespace.
func startNode(t *testing.T) *testNode {
	t.Helper()
	return startNodeWith(t, nil)
}

// startNodeWith is startNode with the agent's CNI configuration made by cni (nil: none)
// from the run directory.
func startNodeWith(t *testing.T, cni func(t *testing.T, runDir string) *node.CNI) *testNode {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("node: needs root for network and mount namespaces")
	}
	c := kube.Shared(t)
	n := netns.New(t)
	// Containers run as other users too: the binary's directory must be open to them.
	binDir, err := os.MkdirTemp("", "l5d-node-testapp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "testapp")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/testapp").CombinedOutput(); err != nil {
		t.Fatalf("building testapp: %v\n%s", err, out)
	}
	runDir := t.TempDir()
	hosts := filepath.Join(runDir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"+hostsLine+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(base) > 40 {
		base = base[:40]
	}
	name := fmt.Sprintf("node-%s-%d", strings.Trim(base, "-"), time.Now().UnixNano()%100000)
	var cniCfg *node.CNI
	if cni != nil {
		cniCfg = cni(t, runDir)
	}
	tn := &testNode{c: c, client: c.Client(), net: n, name: name, runDir: runDir}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() {
		done <- node.Run(ctx, node.Config{
			Client:   c.Client(),
			NodeName: name,
			Network:  n,
			Images: func(image string) (string, error) {
				base := image[strings.LastIndex(image, "/")+1:]
				base, _, _ = strings.Cut(base, "@")
				base, _, _ = strings.Cut(base, ":")
				if base == "testapp" {
					return bin, nil
				}
				return "", fmt.Errorf("no local binary for image %q", image)
			},
			HostsFile:  hosts,
			ClusterDNS: testClusterDNS,
			RunDir:     runDir,
			Logger:     logger,
			CNI:        cniCfg,
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node.Run: %v", err)
			}
			if left := n.Pods(); len(left) > 0 {
				t.Errorf("node.Run returned leaving %d pod namespaces behind", len(left))
			}
		case <-time.After(time.Minute):
			t.Errorf("node.Run did not return a minute after its context ended")
		}
		_ = c.Client().CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	tn.eventually(t, "the node to be Ready", func() (bool, string) {
		nd, err := tn.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, cond := range nd.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, ""
			}
		}
		return false, fmt.Sprint(nd.Status.Conditions)
	})
	tn.ns = c.Namespace(t)
	return tn
}

// testWriter sends the agent's log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// eventually polls cond until it holds, failing the test after a minute with cond's last
// explanation.
func (tn *testNode) eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last string
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

// pod gets a pod of the test namespace.
func (tn *testNode) pod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	p, err := tn.client.CoreV1().Pods(tn.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// log is what a container printed so far.
func (tn *testNode) log(pod, container string) string {
	b, _ := os.ReadFile(node.LogPath(tn.runDir, tn.ns, pod, container))
	return string(b)
}

// waitLog waits until a container's log holds every line of want.
func (tn *testNode) waitLog(t *testing.T, pod, container string, want ...string) string {
	t.Helper()
	var got string
	tn.eventually(t, fmt.Sprintf("the log of %s/%s to hold %q", pod, container, want), func() (bool, string) {
		got = tn.log(pod, container)
		lines := map[string]bool{}
		for _, l := range strings.Split(got, "\n") {
			lines[l] = true
		}
		for _, w := range want {
			if !lines[w] {
				p, err := tn.client.CoreV1().Pods(tn.ns).Get(context.Background(), pod, metav1.GetOptions{})
				status := fmt.Sprint(err)
				if err == nil {
					status = fmt.Sprintf("%+v", p.Status)
				}
				return false, "log so far:\n" + got + "\npod status: " + status
			}
		}
		return true, ""
	})
	return got
}

// createPod creates pod on the test node.
func (tn *testNode) createPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	pod.Namespace = tn.ns
	pod.Spec.NodeName = tn.name
	created, err := tn.client.CoreV1().Pods(tn.ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s: %v", pod.Name, err)
	}
	return created
}

// waitReady waits until the pod is Ready and returns it.
func (tn *testNode) waitReady(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	tn.eventually(t, "pod "+name+" to be Ready", func() (bool, string) {
		var err error
		p, err = tn.client.CoreV1().Pods(tn.ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return podReady(p), fmt.Sprintf("phase %s, conditions %v, containers %v", p.Status.Phase, p.Status.Conditions, p.Status.ContainerStatuses)
	})
	return p
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// get fetches url from the node's namespace.
func (tn *testNode) get(ctx context.Context, url string) (string, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return tn.net.Node.Dial(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}, Timeout: 5 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// app is a testapp container running steps.
func app(name string, steps ...string) corev1.Container {
	return corev1.Container{Name: name, Image: "cr.l5d.io/test/testapp:dev", Args: steps}
}

func ptr[T any](v T) *T { return &v }

// isNotFound reports whether err says the object is gone.
func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
