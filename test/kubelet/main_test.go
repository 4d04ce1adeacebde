package kubelet

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/localcluster"
	"github.com/l5d-go/l5d/test/netns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// appImage is the test program's image as pods name it; the cluster's registry holds it as
// l5d-test/app:v1 and containerd mirrors ghcr.io to that registry.
const appImage = "ghcr.io/l5d-test/app:v1"

// shared is the package's one cluster of two real nodes, started by the first test needing it.
var shared struct {
	once sync.Once
	c    *localcluster.Cluster
	dir  string
	err  error
	// startup is how long Up took (control plane, registry, containerd, kubelet, Ready).
	startup time.Duration
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		if err := shared.c.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "kubelet: closing the cluster:", err)
			code = 1
		}
		if left, err := netns.Leftovers(); err != nil || len(left) > 0 {
			fmt.Fprintln(os.Stderr, "kubelet: namespaces left behind:", left, err)
			code = 1
		}
		if os.Getenv("L5D_KUBE_KEEP") == "1" {
			fmt.Fprintln(os.Stderr, "kubelet: L5D_KUBE_KEEP=1: kept", shared.dir)
		} else {
			os.RemoveAll(shared.dir)
		}
	}
	os.Exit(code)
}

// cluster returns the shared cluster of real nodes, starting it (and pushing the test
// program's image) on first use; it skips the test without root or with L5D_SKIP_KUBE=1.
func cluster(t testing.TB) *localcluster.Cluster {
	t.Helper()
	if os.Getenv("L5D_SKIP_KUBE") == "1" {
		t.Skip("L5D_SKIP_KUBE=1")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, containerd, kubelet)")
	}
	shared.once.Do(func() { shared.c, shared.dir, shared.err = start() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.c
}

// start builds the test program, brings a cluster of real nodes up and pushes the
// program's image.
func start() (*localcluster.Cluster, string, error) {
	dir, err := os.MkdirTemp("", "l5d-kubelet-")
	if err != nil {
		return nil, "", err
	}
	began := time.Now()
	c, err := upCluster(dir, true, 2)
	if err != nil {
		return nil, dir, err
	}
	shared.startup = time.Since(began)
	return c, dir, nil
}

// upCluster starts a cluster of nodes Nodes under dir (run/, and the test program in bin/):
// real nodes with the program's image pushed to the registry as appImage, or (kubelet
// false) the node agent running the program for appImage from bin/.
func upCluster(dir string, kubelet bool, nodes int) (*localcluster.Cluster, error) {
	plugins, err := exec.Command("../../tools/cni-plugins/build.sh").Output()
	if err != nil {
		return nil, fmt.Errorf("tools/cni-plugins/build.sh: %w", err)
	}
	bin := filepath.Join(dir, "bin")
	app := filepath.Join(bin, "app")
	if _, err := os.Stat(app); err != nil {
		build := exec.Command("go", "build", "-o", app, "./internal/app")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building the test program: %w\n%s", err, out)
		}
	}
	var layouts []string
	if kubelet {
		// The program's image reaches the registry the way make images' output does: as
		// an OCI layout naming it.
		dir := filepath.Join(dir, "images")
		if err := writeLayout(dir, app, appImage); err != nil {
			return nil, err
		}
		layouts = append(layouts, dir)
	}
	return localcluster.Up(context.Background(), localcluster.Options{
		RunDir:       filepath.Join(dir, "run"),
		BinDirs:      []string{bin},
		CNIPlugins:   strings.TrimSpace(string(plugins)),
		Kubelet:      kubelet,
		ImageLayouts: layouts,
		Nodes:        nodes,
		Runtime:      os.Getenv("L5D_TEST_RUNTIME"),
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}

// writeLayout writes an OCI image layout at dir holding ProgramImage(program) named ref.
func writeLayout(dir, program, ref string) error {
	img, err := localcluster.ProgramImage(program)
	if err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the image layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"io.containerd.image.name": ref})); err != nil {
		return fmt.Errorf("writing the image layout: %w", err)
	}
	return nil
}

// kubectl runs the real kubectl (kube.BinDir()) with the cluster's admin kubeconfig unless
// args name another, and returns stdout, stderr and the error.
func kubectl(ctx context.Context, c *localcluster.Cluster, args ...string) (string, string, error) {
	return kubectlEnv(ctx, c, nil, args...)
}

// kubectlEnv is kubectl with env added to this process's environment.
func kubectlEnv(ctx context.Context, c *localcluster.Cluster, env []string, args ...string) (string, string, error) {
	if !hasKubeconfig(args) {
		args = append([]string{"--kubeconfig", c.Kubeconfig()}, args...)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(kube.BinDir(), "kubectl"), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func hasKubeconfig(args []string) bool {
	for _, a := range args {
		if a == "--kubeconfig" || strings.HasPrefix(a, "--kubeconfig=") {
			return true
		}
	}
	return false
}

// appPod is a pod running the test program with args, Ready once it serves on 8080 when
// probe is set.
func appPod(ns, name string, probe bool, args ...string) *corev1.Pod {
	ctr := corev1.Container{
		Name:  "app",
		Image: appImage,
		Args:  args,
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
	}
	if probe {
		ctr.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1,
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{ctr},
			TerminationGracePeriodSeconds: ptr[int64](1),
		},
	}
}

func ptr[T any](v T) *T { return &v }

// waitPod polls pod ns/name until cond holds, failing with the pod's last status after the
// deadline.
func waitPod(t testing.TB, c *localcluster.Cluster, ns, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.Client().CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		if last != nil {
			t.Fatalf("pod %s/%s: %s: not within %v; status: phase %s, conditions %+v, containers %+v", ns, name, what, timeout, last.Status.Phase, last.Status.Conditions, last.Status.ContainerStatuses)
		}
		t.Fatalf("pod %s/%s: %s: not within %v: %v", ns, name, what, timeout, err)
	}
	return last
}
