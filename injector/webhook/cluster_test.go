package webhook

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/test/kube"
)

// countingTransport counts the GETs of single ReplicaSets that pass through it.
type countingTransport struct {
	next http.RoundTripper
	gets *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/replicasets/") {
		c.gets.Add(1)
	}
	return c.next.RoundTrip(r)
}

// TestOwnerCache: with an OwnerCache, Owner resolves a pod's owner (and the Deployment
// above its ReplicaSet) from the cache, without reading the owner through the API; an owner
// the cache has not seen with the pod's reference's UID (recreated under the same name, or
// a forged UID) is read through the API, which decides.
func TestOwnerCache(t *testing.T) {
	c := kube.Shared(t)
	ctx := t.Context()
	ns := c.Namespace(t)
	var gets atomic.Int64
	cfg := c.RESTConfig()
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, gets: &gets} })
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metadata.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	factory := metadatainformer.NewSharedInformerFactory(meta, 0)
	kc := &KubeCluster{Client: client, Owners: NewOwnerCache(factory)}
	if err := k8s.StartAndSync(ctx, factory, time.Minute); err != nil {
		t.Fatal(err)
	}

	zero := int32(0)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: plainPod("", "", nil).Spec},
	}}
	dep, err = c.Client().AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The deployment controller makes the ReplicaSet; wait until the cache has it.
	var rs metav1.Object
	eventually.True(t, "the Deployment's ReplicaSet in the owner cache", func() bool {
		list, err := c.Client().AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(list.Items) == 0 {
			return false
		}
		rs = &list.Items[0]
		return kc.Owners.get("ReplicaSet", ns, rs.GetName()) != nil
	})

	before := gets.Load()
	got := kc.Owner(ctx, ns, ownedPod(ns, "web-x", "ReplicaSet", rs.GetName(), rs.GetUID(), nil, nil))
	if got.Kind != "Deployment" || got.Name != "web" || got.Verified == nil || got.Verified.UID != dep.UID {
		t.Errorf("owner of the ReplicaSet's pod = %+v (verified %+v), want Deployment web verified with UID %s", got.Owner, got.Verified, dep.UID)
	}
	if n := gets.Load() - before; n != 0 {
		t.Errorf("%d ReplicaSet GETs for an owner in the cache, want 0", n)
	}

	// A UID the cache does not have: read through the API, which does not verify it.
	before = gets.Load()
	got = kc.Owner(ctx, ns, ownedPod(ns, "web-y", "ReplicaSet", rs.GetName(), "00000000-0000-0000-0000-000000000001", nil, nil))
	if got.Verified != nil || got.Kind != "ReplicaSet" {
		t.Errorf("owner with a forged UID = %+v verified %+v, want the ReplicaSet unverified", got.Owner, got.Verified)
	}
	if n := gets.Load() - before; n != 1 {
		t.Errorf("%d ReplicaSet GETs for a UID the cache does not have, want 1", n)
	}

	// An owner created just now, which the cache may not have seen yet: verified either way.
	plain := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Namespace: ns}, Spec: appsv1.ReplicaSetSpec{
		Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "fresh"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "fresh"}}, Spec: plainPod("", "", nil).Spec},
	}}
	fresh, err := c.Client().AppsV1().ReplicaSets(ns).Create(ctx, plain, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got = kc.Owner(ctx, ns, ownedPod(ns, "fresh-x", "ReplicaSet", "fresh", fresh.UID, nil, nil))
	if got.Kind != "ReplicaSet" || got.Name != "fresh" || got.Verified == nil || got.Verified.UID != fresh.UID {
		t.Errorf("owner of a new ReplicaSet's pod = %+v verified %+v, want ReplicaSet fresh verified", got.Owner, got.Verified)
	}
}
