package kube

import (
	"context"
	"strings"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// recorder is a mutating webhook that labels pods and remembers which it saw.
type recorder struct {
	mu   sync.Mutex
	seen []string // namespace/name of admitted pods
}

func (r *recorder) admit(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	r.mu.Lock()
	r.seen = append(r.seen, req.Namespace+"/"+req.Name)
	r.mu.Unlock()
	return Patched([]byte(`[{"op":"add","path":"/metadata/labels","value":{"mutated-by":"test-webhook"}}]`))
}

func (r *recorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func TestMutatingWebhookPatchesPods(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	ns := c.Namespace(t)
	other := c.Namespace(t)
	rec := &recorder{}
	srv := ServeHTTPS(t, AdmissionFunc(rec.admit))
	c.RegisterMutatingWebhook(t, Webhook{
		Name: "label.substrate.l5d.test", URL: srv.URL + "/mutate", CABundle: srv.CABundle,
		Namespaces: []string{ns},
	})

	pod := c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}})
	if got := pod.Labels["mutated-by"]; got != "test-webhook" {
		t.Errorf("created pod labels = %v, want mutated-by=test-webhook", pod.Labels)
	}
	if got := rec.calls(); len(got) != 1 || got[0] != ns+"/web" {
		t.Errorf("webhook calls = %v, want [%s/web]", got, ns)
	}

	outside := c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: other}})
	if _, ok := outside.Labels["mutated-by"]; ok {
		t.Errorf("pod outside the webhook's namespaces was mutated: %v", outside.Labels)
	}
}

func TestValidatingWebhookDeniesAndUnregisters(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	ns := c.Namespace(t)
	srv := ServeHTTPS(t, AdmissionFunc(func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		if strings.HasPrefix(req.Name, "bad-") {
			return Denied("pods named bad-* are not welcome")
		}
		return nil
	}))
	// Registered in a subtest so that its cleanup (unregistering) runs before the last check.
	t.Run("registered", func(t *testing.T) {
		c.RegisterValidatingWebhook(t, Webhook{
			Name: "deny.substrate.l5d.test", URL: srv.URL, CABundle: srv.CABundle, Namespaces: []string{ns},
		})
		c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "good-0", Namespace: ns}})
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bad-0", Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		_, err := c.Client().CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "pods named bad-* are not welcome") {
			t.Fatalf("creating bad-0: error %v, want the webhook's denial", err)
		}
	})
	c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bad-1", Namespace: ns}})
}
