package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// TestOncePrintsATable runs the command's loop once against a real API server with one
// deployment and one meshed pod that is not running yet: one table row, no traffic.
func TestOncePrintsATable(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "ghcr.io/l5d-go/demo-web:v1"}}}},
		},
	}
	if _, err := c.Client().AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "ghcr.io/l5d-go/demo-web:v1"}, {Name: "linkerd-proxy", Image: "proxy"}}}})

	var out, warn bytes.Buffer
	if err := run(context.Background(), &out, &warn, c.Kubeconfig(), ns, 10*time.Millisecond, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || strings.Join(strings.Fields(lines[1]), " ") != "web 1/1 - - - - - -" {
		t.Errorf("output:\n%s\nwant the header and `web 1/1 - - - - - -`", out.String())
	}
	if warn.Len() != 0 {
		t.Errorf("warnings %q, want none", warn.String())
	}
}

func TestBadArguments(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, &out, "/nonexistent/kubeconfig", "x", time.Second, true); err == nil ||
		!strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("missing kubeconfig: %v, want an error naming the kubeconfig", err)
	}
	if err := run(context.Background(), &out, &out, "", "x", 0, true); err == nil || !strings.Contains(err.Error(), "-interval") {
		t.Errorf("zero interval: %v, want an error naming -interval", err)
	}
}
