package node_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/l5d-go/l5d/test/netns"
	"github.com/l5d-go/l5d/test/node"
)

// cniPlugins builds (or finds cached) the standard CNI plugins.
func cniPlugins(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../../tools/cni-plugins/build.sh").Output()
	if err != nil {
		t.Fatalf("tools/cni-plugins/build.sh: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func TestCNIModeRunsTheNodesCNIConfiguration(t *testing.T) {
	plugins := cniPlugins(t)
	var ipamDir string
	tn := startNodeWith(t, func(t *testing.T, runDir string) *node.CNI {
		confDir := filepath.Join(runDir, "cni", "net.d")
		ipamDir = filepath.Join(runDir, "cni", "ipam")
		if err := os.MkdirAll(confDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(confDir, "10-"+node.BridgeNetworkName+".conflist"), []byte(node.BridgeNetwork(ipamDir, netns.DefaultRanges)), 0o644); err != nil {
			t.Fatal(err)
		}
		return &node.CNI{ConfDir: confDir, BinDirs: []string{plugins}, CacheDir: filepath.Join(runDir, "cni", "cache")}
	})
	ctx := context.Background()
	server := app("app", "serve:0.0.0.0:8080")
	server.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(8080)}},
		PeriodSeconds: 1,
	}
	tn.createPod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{Containers: []corev1.Container{server}}})
	p := tn.waitReady(t, "web")
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil || !netip.MustParsePrefix("10.244.128.0/18").Contains(ip) {
		t.Fatalf("pod IP %q is not host-local's (10.244.128.2-10.244.191.254): %v", p.Status.PodIP, err)
	}
	lease := filepath.Join(ipamDir, node.BridgeNetworkName, ip.String())
	if _, err := os.Stat(lease); err != nil {
		t.Fatalf("host-local holds no lease for %s: %v", ip, err)
	}
	if _, err := tn.get(ctx, "http://"+ip.String()+":8080/"); err != nil {
		t.Fatalf("the pod does not serve on its CNI address: %v", err)
	}

	if err := tn.client.CoreV1().Pods(tn.ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	tn.eventually(t, "DEL to release the pod's address", func() (bool, string) {
		_, err := os.Stat(lease)
		return os.IsNotExist(err), fmt.Sprint(err)
	})

	// A network that fails ADD keeps the pod in ContainerCreating, saying why; a
	// single-plugin .conf sorting first is the network now.
	broken := filepath.Join(filepath.Dir(lease), "..", "..", "net.d", "00-broken.conf")
	if err := os.WriteFile(broken, []byte(`{"cniVersion":"1.0.0","name":"broken","type":"no-such-plugin"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tn.createPod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stuck"}, Spec: corev1.PodSpec{Containers: []corev1.Container{app("app", "serve:0.0.0.0:8080")}}})
	tn.eventually(t, "the pod to wait on its network", func() (bool, string) {
		p := tn.pod(t, "stuck")
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && strings.Contains(w.Message, "failed to set up sandbox network") && strings.Contains(w.Message, "no-such-plugin") {
				return true, ""
			}
		}
		return false, fmt.Sprint(p.Status.ContainerStatuses)
	})
}
