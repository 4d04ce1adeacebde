package server_test

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/l5d-go/l5d/test/kube"
)

// TestDeploymentScaling scales a Deployment (pods made by the real controller manager,
// given addresses and readiness as a kubelet would) and watches adds and removes.
func TestDeploymentScaling(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.c.CreateNode(t, kube.Node{Name: "node-1"})
	e.service(t, ns, nil)
	replicas := int32(3)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}}}}
	deps := e.c.Client().AppsV1().Deployments(ns)
	if _, err := deps.Create(t.Context(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := e.get(t, "web."+ns+".svc.cluster.local:80")
	// Act as the kubelet: every pod of the Deployment gets an address and becomes ready.
	next := 10
	kubelet := func(want int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			pods, err := e.c.Client().CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				t.Fatal(err)
			}
			live := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp != nil {
					continue
				}
				live++
				if p.Status.PodIP == "" {
					e.c.SetPodStatus(t, ns, p.Name, kube.PodStatus{Node: "node-1", IPs: []string{fmt.Sprintf("10.3.0.%d", next)}, Ready: true})
					next++
				}
			}
			if live == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d live pods, want %d", live, want)
			}
			time.Sleep(100 * time.Millisecond) // polling interval
		}
	}
	kubelet(3)
	w.until(t, "three endpoints", func(w *watcher) bool { return len(w.set) == 3 })
	replicas = 1
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := deps.Get(t.Context(), "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.Replicas = &replicas
		_, err = deps.Update(t.Context(), cur, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	w.until(t, "scaled down to one endpoint", func(w *watcher) bool { return len(w.set) == 1 })
}
