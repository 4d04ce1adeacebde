package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/test/kube"
)

// ownedPod is a pod whose controller is kind/name with uid.
func ownedPod(ns, name, kind, owner string, uid types.UID, labels, ann map[string]string) *corev1.Pod {
	p := plainPod(ns, name, ann)
	p.Labels = labels
	yes := true
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: owner, UID: uid, Controller: &yes}}
	return p
}

// TestForgedReviewsRecordNoEvents: anyone who reaches the webhook port can POST
// AdmissionReviews. Events are recorded only for what the API server itself would ask
// about: not for dry runs, and only on an owner that exists with the UID the pod's
// controller reference names. Forged reviews naming owners that do not exist, or an
// existing owner with another UID, and dry runs through the API server record nothing;
// a real pod of a real owner still gets its Event.
func TestForgedReviewsRecordNoEvents(t *testing.T) {
	c := kube.Shared(t)
	ctx := t.Context()
	ns := c.Namespace(t, kube.WithAnnotations(map[string]string{inject.AnnotationInject: "enabled"}))
	inj := startInjector(t, c, ns)
	zero := int32(0)
	statefulSet := func(name string) *appsv1.StatefulSet {
		sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: appsv1.StatefulSetSpec{
			Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: plainPod("", "", nil).Spec},
		}}
		created, err := c.Client().AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return created
	}
	db, web := statefulSet("db"), statefulSet("web")

	forge := func(t *testing.T, uid string, pod *corev1.Pod) {
		t.Helper()
		raw, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		review := admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: types.UID(uid), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Operation: admissionv1.Create,
				Namespace: ns, Object: runtime.RawExtension{Raw: raw}},
		}
		body, err := json.Marshal(&review)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := inj.srv.Client().Post(inj.srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("forged review %s: status %d %s", uid, resp.StatusCode, out)
		}
	}
	forge(t, "f1", ownedPod(ns, "ghost-0", "StatefulSet", "ghost", "00000000-0000-0000-0000-000000000001", nil, nil))
	forge(t, "f2", ownedPod(ns, "ghost-7d4b9c-x", "ReplicaSet", "ghost-7d4b9c", "00000000-0000-0000-0000-000000000002",
		map[string]string{"pod-template-hash": "7d4b9c"}, nil))
	forge(t, "f3", ownedPod(ns, "ghost-ds-x", "DaemonSet", "ghost-ds", "00000000-0000-0000-0000-000000000003", nil,
		map[string]string{inject.AnnotationSkipInboundPorts: "80,words of the caller's choosing"}))
	forge(t, "f4", ownedPod(ns, "db-0", "StatefulSet", "db", "00000000-0000-0000-0000-000000000004", nil, nil))
	// A dry run through the API server, for a pod of a real owner.
	dry := ownedPod(ns, "db-1", "StatefulSet", "db", db.UID, nil, nil)
	if _, err := c.Client().CoreV1().Pods(ns).Create(ctx, dry, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	// Then a real pod of a real owner: its Event is recorded, after those above would have
	// been (the recorder writes in order).
	c.CreatePod(t, ownedPod(ns, "web-0", "StatefulSet", "web", web.UID, nil, nil))
	var got []string
	var uid types.UID
	eventually.True(t, "the Injected event on the real StatefulSet", func() bool {
		evs, err := c.Client().CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		got = got[:0]
		found := false
		for _, e := range evs.Items {
			if e.Source.Component != "linkerd-proxy-injector" {
				continue
			}
			got = append(got, e.InvolvedObject.Kind+"/"+e.InvolvedObject.Name+" "+e.Reason)
			if e.InvolvedObject.Kind == "StatefulSet" && e.InvolvedObject.Name == "web" && e.Reason == "Injected" {
				found, uid = true, e.InvolvedObject.UID
			}
		}
		return found
	})
	if len(got) != 1 {
		t.Fatalf("injector events %q, want only the Injected event on StatefulSet web", got)
	}
	if uid != web.UID {
		t.Errorf("the event names UID %q, want the StatefulSet's %q", uid, web.UID)
	}
}
