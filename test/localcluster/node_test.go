package localcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/test/node"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// imageDir returns the cluster's image directory (the test cluster's BinDirs), with the
// hello app built into it and curl linked in, once per package run.
func imageDir(t *testing.T) string {
	t.Helper()
	dir := testImageDir
	if _, err := os.Stat(filepath.Join(dir, "hello")); err == nil {
		return dir
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "hello"), "./internal/hello").CombinedOutput(); err != nil {
		t.Fatalf("building the hello app: %v\n%s", err, out)
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	if err := os.Symlink(curl, filepath.Join(dir, "curl")); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	return dir
}

func TestDeploymentServedByNameToAnotherPod(t *testing.T) {
	c := cluster(t)
	imageDir(t)
	ns := c.Kube().Namespace(t)
	ctx := context.Background()
	labels := map[string]string{"app": "web"}
	if _, err := c.Client().AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "hello", Image: "ghcr.io/l5d-go/hello:test",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
						HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)},
					}, PeriodSeconds: 1},
				}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{
			Name: "http", Port: 80, TargetPort: intstr.FromString("http"),
		}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually.NoError(t, "two ready replicas", func() error {
		d, err := c.Client().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.ReadyReplicas != 2 {
			return fmt.Errorf("%d ready replicas", d.Status.ReadyReplicas)
		}
		return nil
	})

	url := "http://web." + ns + ".svc.cluster.local/"
	if _, err := c.Client().CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "curl", Image: "curlimages/curl:8",
				// Retries cover kube-proxy syncing its rules a moment after the endpoints.
				Command: []string{"curl", "-sS", "--retry", "30", "--retry-delay", "1", "--retry-all-errors", "--max-time", "5", url},
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	eventually.NoError(t, "the client pod to finish", func() error {
		p, err := c.Client().CoreV1().Pods(ns).Get(ctx, "client", metav1.GetOptions{})
		if err != nil {
			return err
		}
		phase = p.Status.Phase
		if phase != corev1.PodSucceeded && phase != corev1.PodFailed {
			return fmt.Errorf("phase %s", phase)
		}
		return nil
	})
	out, err := os.ReadFile(node.LogPath(c.RunDir(), ns, "client", "curl"))
	if err != nil {
		t.Fatal(err)
	}
	if phase != corev1.PodSucceeded || !strings.HasPrefix(string(out), "hello from web-") {
		t.Errorf("client pod %s, output %q; want hello from a web pod", phase, out)
	}
}

func TestPodInClusterConfigReachesAPIServer(t *testing.T) {
	c := cluster(t)
	imageDir(t)
	ns := c.Kube().Namespace(t)
	ctx := context.Background()
	if _, err := c.Client().CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "whoami", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "app", Image: "ghcr.io/l5d-go/hello:test", Args: []string{"whoami"}}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	eventually.NoError(t, "the whoami pod to finish", func() error {
		p, err := c.Client().CoreV1().Pods(ns).Get(ctx, "whoami", metav1.GetOptions{})
		if err != nil {
			return err
		}
		phase = p.Status.Phase
		if phase != corev1.PodSucceeded && phase != corev1.PodFailed {
			return fmt.Errorf("phase %s", phase)
		}
		return nil
	})
	out, err := os.ReadFile(node.LogPath(c.RunDir(), ns, "whoami", "app"))
	if err != nil {
		t.Fatal(err)
	}
	want := "system:serviceaccount:" + ns + ":default via https://10.96.0.1:443"
	if phase != corev1.PodSucceeded || string(out) != want {
		t.Errorf("whoami pod %s, output %q; want %q", phase, out, want)
	}
}
