package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/l5d-go/l5d/pkg/inject"
	pkgwebhook "github.com/l5d-go/l5d/pkg/webhook"
)

// parityPods are the pods the webhook's patch is checked on: pkg/inject's golden inputs
// (workload templates as their pods), the benchmark's pod, and pods that exercise each
// kind of operation (labels and annotations added, replaced or kept, keys to escape,
// values to escape, lists present or absent, init containers, volumes, the debug sidecar).
func parityPods(t *testing.T) map[string]*corev1.Pod {
	t.Helper()
	pods := map[string]*corev1.Pod{}
	files, err := filepath.Glob("../../pkg/inject/testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if filepath.Ext(filepath.Base(f[:len(f)-len(".yaml")])) == ".golden" {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw, nil, nil)
		if err != nil {
			t.Fatalf("decode %s: %v", f, err)
		}
		// A workload's template, as the pod its controller creates.
		meta, spec := inject.PodTemplate(obj)
		if meta == nil {
			t.Fatalf("%s: no pod template", f)
		}
		pod := &corev1.Pod{ObjectMeta: *meta, Spec: *spec}
		if _, isPod := obj.(*corev1.Pod); !isPod {
			acc, err := apimeta.Accessor(obj)
			if err != nil {
				t.Fatal(err)
			}
			pod.GenerateName, pod.Namespace = acc.GetName()+"-", acc.GetNamespace()
		}
		pods[filepath.Base(f)] = pod
	}
	pods["typical"] = typicalPod()
	pods["bare"] = &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	pods["full"] = &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n",
			Labels: map[string]string{"a/b": "c", inject.LabelControlPlaneNS: "other", inject.LabelWorkloadNS: "n"},
			Annotations: map[string]string{"x~y": "z", "tricky/<&>": "\"q\" \\ \u2028 ü", inject.AnnotationInject: "enabled",
				inject.AnnotationNativeSidecarBeta: "false", inject.AnnotationCreatedBy: "someone else"}},
		Spec: corev1.PodSpec{
			Volumes:        []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			InitContainers: []corev1.Container{{Name: "migrate", Ports: []corev1.ContainerPort{{Name: "m", ContainerPort: 7000}}}},
			Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 80}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP}}},
				{Name: "side", Env: []corev1.EnvVar{{Name: "A", Value: "<b>"}}}},
		},
	}
	debug := pods["full"].DeepCopy()
	debug.Annotations[inject.AnnotationEnableDebugSidecar] = "true"
	pods["debug-classic"] = debug
	debugNative := debug.DeepCopy()
	delete(debugNative.Annotations, inject.AnnotationNativeSidecarBeta)
	pods["debug-native"] = debugNative
	emptyLists := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{}, Annotations: map[string]string{}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{}, InitContainers: []corev1.Container{}, Volumes: []corev1.Volume{}}}
	pods["empty-lists"] = emptyLists
	return pods
}

// TestPatchAsBefore: the webhook's patch, written from what injection adds, turns every
// parity pod into the pod that injecting it and comparing (inject.Values.InjectPod, then
// pkg/webhook.JSONPatch, the webhook's patch before) gives, applied as the API server
// applies patches (evanphx/json-patch); the two patches are the same bytes except where
// JSONPatch replaces a list grown at both ends. Checked with the values' variants (classic
// and native sidecars, CNI), namespace configuration, ingress mode and owners.
func TestPatchAsBefore(t *testing.T) {
	variants := map[string]func(*inject.Values){
		"default": func(*inject.Values) {},
		"classic": func(v *inject.Values) { v.NativeSidecar = false },
		"cni":     func(v *inject.Values) { v.CNIEnabled = true },
	}
	namespaces := map[string]inject.Namespace{
		"ns-enabled": {Name: "shop", Annotations: map[string]string{inject.AnnotationInject: "enabled"}},
		"ns-config": {Name: "shop", Annotations: map[string]string{inject.AnnotationInject: "ingress",
			inject.AnnotationOpaquePorts: "5432", "config.linkerd.io/proxy-memory-limit": "128Mi"}},
		"ns-unnamed": {Annotations: map[string]string{inject.AnnotationInject: "enabled"}},
	}
	owners := map[string]inject.Owner{"none": {}, "deployment": {Kind: "Deployment", Name: "web"}, "job": {Kind: "Job", Name: "batch"}}
	checked, otherBytes := 0, 0
	for podName, pod := range parityPods(t) {
		for vName, variant := range variants {
			values := testValues(t)
			variant(values)
			for nsName, ns := range namespaces {
				for ownerName, owner := range owners {
					name := podName + "/" + vName + "/" + nsName + "/" + ownerName
					raw, err := json.Marshal(pod)
					if err != nil {
						t.Fatal(err)
					}
					want, _, wantErr := values.InjectPod(ns, owner, pod.DeepCopy())
					h := &Handler{Values: func() *inject.Values { return values }, Cluster: fixedCluster{ns: ns, owner: owner}, Metrics: NewMetrics()}
					resp := h.Review(context.Background(), &admissionv1.AdmissionRequest{UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
						Operation: admissionv1.Create, Namespace: pod.Namespace, Object: runtime.RawExtension{Raw: raw}})
					switch {
					case wantErr != nil:
						if resp.Allowed || resp.Result == nil || resp.Result.Code != 422 {
							t.Errorf("%s: injection fails (%v), the webhook answered %+v", name, wantErr, resp)
						}
						continue
					case want == nil:
						if !resp.Allowed || resp.Patch != nil {
							t.Errorf("%s: not injected before, the webhook answered %+v", name, resp)
						}
						continue
					case !resp.Allowed || resp.Patch == nil:
						t.Errorf("%s: injected before, the webhook answered %+v", name, resp)
						continue
					}
					before, err := pkgwebhook.JSONPatch(pod, want)
					if err != nil {
						t.Fatal(err)
					}
					checked++
					if bytes.Equal(before, resp.Patch) {
						continue
					}
					// JSONPatch replaces a list grown at both ends (a classic proxy in front, the
					// debug sidecar behind) and adds to an empty list item by item; the webhook
					// adds the items, or the whole list.
					cs := want.Spec.Containers
					bothEnds := len(cs) > 1 && cs[0].Name == inject.ProxyContainerName && cs[len(cs)-1].Name == inject.DebugContainerName
					emptyList := pod.Spec.Containers != nil && len(pod.Spec.Containers) == 0
					if !bothEnds && !emptyList {
						t.Errorf("%s: the patch is not the one before:\n got %s\nwant %s", name, resp.Patch, before)
					}
					otherBytes++
					if got, exp := applied(t, raw, resp.Patch), applied(t, raw, before); !reflect.DeepEqual(got, exp) {
						t.Errorf("%s: patched pods differ:\n got %s\nwant %s\npatch %s\nbefore %s", name, got, exp, resp.Patch, before)
					}
				}
			}
		}
	}
	if checked < 300 {
		t.Errorf("only %d injected cases checked", checked)
	}
	t.Logf("%d injected cases checked, %d patches with other bytes and the same result", checked, otherBytes)
}

// fixedCluster is staticCluster with a fixed owner.
type fixedCluster struct {
	ns    inject.Namespace
	owner inject.Owner
}

func (c fixedCluster) Namespace(context.Context, string) (inject.Namespace, error) { return c.ns, nil }
func (c fixedCluster) Owner(context.Context, string, *corev1.Pod) ResolvedOwner {
	return ResolvedOwner{Owner: c.owner}
}

// applied is doc patched with patch, decoded.
func applied(t *testing.T, doc, patch []byte) any {
	t.Helper()
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("applying %s: %v", patch, err)
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
