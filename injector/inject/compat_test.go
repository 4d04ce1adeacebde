package inject

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestInjectedMetadataMatchesLinkerd checks every annotation and label Linkerd's injector
// writes on an injected pod: created-by, proxy-version, trust-root-sha256 and
// identity-mode, the inject mode, the control-plane/workload namespace and owner labels, and
// config.linkerd.io/opaque-ports (the namespace's value, or the default opaque ports the pod
// exposes) so that the destination controller, which reads the pod's annotation, agrees with
// the proxy on which ports skip protocol detection.
func TestInjectedMetadataMatchesLinkerd(t *testing.T) {
	pod := func(ann map[string]string, ports ...int32) *corev1.Pod {
		a := map[string]string{AnnotationInject: "enabled"}
		for k, v := range ann {
			a[k] = v
		}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "emojivoto", Annotations: a},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		}
		for _, port := range ports {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: port})
		}
		return p
	}
	v := testValues(t)
	out, _, err := v.InjectPod(Namespace{Name: "emojivoto"}, Owner{Kind: "Deployment", Name: "web"}, pod(nil, 80, 3306, 6379))
	if err != nil {
		t.Fatal(err)
	}
	wantAnn := map[string]string{
		"linkerd.io/created-by":          "linkerd/proxy-injector stable-2.12.2",
		"linkerd.io/proxy-version":       "stable-2.12.2",
		"linkerd.io/trust-root-sha256":   seedAnchorsSHA,
		"linkerd.io/identity-mode":       "default",
		"linkerd.io/inject":              "enabled",
		"config.linkerd.io/opaque-ports": "3306,6379",
	}
	for k, want := range wantAnn {
		if got, ok := out.Annotations[k]; !ok || got != want {
			t.Errorf("annotation %s = %q (present %v), want %q", k, got, ok, want)
		}
	}
	wantLabels := map[string]string{
		"linkerd.io/control-plane-ns": "linkerd",
		"linkerd.io/workload-ns":      "emojivoto",
		"linkerd.io/proxy-deployment": "web",
	}
	for k, want := range wantLabels {
		if got := out.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}

	for _, tc := range []struct {
		name      string
		ns, ann   map[string]string
		ports     []int32
		want      string
		wantUnset bool
	}{
		{name: "no default opaque port exposed", ports: []int32{80, 8080}, wantUnset: true},
		{name: "namespace value copied", ns: map[string]string{AnnotationOpaquePorts: "8080-8090"}, ports: []int32{80}, want: "8080-8090"},
		{name: "pod value kept", ns: map[string]string{AnnotationOpaquePorts: "8080"}, ann: map[string]string{AnnotationOpaquePorts: "9000"}, ports: []int32{3306}, want: "9000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := v.InjectPod(Namespace{Name: "emojivoto", Annotations: tc.ns}, Owner{}, pod(tc.ann, tc.ports...))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := out.Annotations[AnnotationOpaquePorts]
			if tc.wantUnset {
				if ok {
					t.Errorf("opaque-ports annotation %q written, want none", got)
				}
				return
			}
			if got != tc.want {
				t.Errorf("opaque-ports annotation %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAdminShutdownAnnotation checks Linkerd's config.linkerd.io/proxy-admin-shutdown
// (enabled/disabled) switches the proxy's POST /shutdown admin endpoint.
func TestAdminShutdownAnnotation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		owner Owner
		ann   string // "" for none
		want  bool
	}{
		{"default off", Owner{Kind: "Deployment", Name: "d"}, "", false},
		{"enabled", Owner{Kind: "Deployment", Name: "d"}, "enabled", true},
		{"disabled", Owner{Kind: "Deployment", Name: "d"}, "disabled", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testValues(t)
			ann := map[string]string{AnnotationInject: "enabled"}
			if tc.ann != "" {
				ann[AnnotationProxyAdminShutdown] = tc.ann
			}
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: ann}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
			out, _, err := v.InjectPod(Namespace{Name: "n"}, tc.owner, p)
			if err != nil {
				t.Fatal(err)
			}
			got := false
			for _, e := range findProxy(&out.Spec).Env {
				if e.Name == envShutdownEndpoint && e.Value == "true" {
					got = true
				}
			}
			if got != tc.want {
				t.Errorf("%s set: %v, want %v", envShutdownEndpoint, got, tc.want)
			}
		})
	}
}
