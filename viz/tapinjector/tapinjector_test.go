package tapinjector_test

import (
	"io"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/viz/tapinjector"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

const tapID = "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local"

func proxyEnv(p *corev1.Pod) (string, bool) {
	for _, list := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range list {
			if c.Name != inject.ProxyContainerName {
				continue
			}
			for _, e := range c.Env {
				if e.Name == inject.EnvTapSvcName {
					return e.Value, true
				}
			}
		}
	}
	return "", false
}

// TestTapInjector registers the injector with the real API server and creates pods through
// it: meshed pods get the tap identity and the tap-enabled annotation, unless the pod or
// its namespace disables tap; unmeshed pods are left alone.
func TestTapInjector(t *testing.T) {
	c := kube.Shared(t)
	on := c.Namespace(t)
	off := c.Namespace(t, func(n *corev1.Namespace) {
		n.Annotations = map[string]string{inject.AnnotationDisableTap: "true"}
	})
	inj := &tapinjector.Injector{TapIdentity: tapID, Kube: c.Client(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := kube.ServeHTTPS(t, inj)
	c.RegisterMutatingWebhook(t, kube.Webhook{Name: "tap-injector.linkerd.io", URL: srv.URL, CABundle: srv.CABundle, Namespaces: []string{on, off}})

	meshed := func(ns, name string, annotations map[string]string, native bool) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}
		proxy := corev1.Container{Name: inject.ProxyContainerName, Image: "proxy", Env: []corev1.EnvVar{{Name: "LINKERD2_PROXY_LOG", Value: "info"}}}
		if native {
			always := corev1.ContainerRestartPolicyAlways
			proxy.RestartPolicy = &always
			p.Spec.InitContainers = []corev1.Container{proxy}
		} else {
			p.Spec.Containers = append(p.Spec.Containers, proxy)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"meshed", meshed(on, "web", nil, false), true},
		{"native sidecar", meshed(on, "native", nil, true), true},
		{"pod disables tap", meshed(on, "quiet", map[string]string{inject.AnnotationDisableTap: "true"}, false), false},
		{"namespace disables tap", meshed(off, "web", nil, false), false},
		{"not meshed", &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: on},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := c.CreatePod(t, tc.pod)
			id, ok := proxyEnv(got)
			if tc.want && (id != tapID || got.Annotations[inject.AnnotationTapEnabled] != "true") {
				t.Errorf("%s=%q, annotations %v: want the tap identity and %s=true", inject.EnvTapSvcName, id, got.Annotations, inject.AnnotationTapEnabled)
			}
			if !tc.want && (ok || got.Annotations[inject.AnnotationTapEnabled] != "") {
				t.Errorf("tap enabled (%s=%q, annotations %v), want the pod unchanged", inject.EnvTapSvcName, id, got.Annotations)
			}
		})
	}
}
