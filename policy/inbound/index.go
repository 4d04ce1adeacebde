// Package inbound serves io.linkerd.proxy.inbound.InboundServerPolicies: for a pod and
// port it answers the protocol and the authorizations the pod's proxy enforces, from the
// Server that selects the port and the AuthorizationPolicies bound to it, or from the
// default policy (pod annotation, namespace annotation, cluster default).
package inbound

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
)

// Index is the informer-backed view of pods, namespaces, policy resources and the
// route kinds (RouteResources) the API server serves at Start.
type Index struct {
	Pods       corelisters.PodLister
	Namespaces corelisters.NamespaceLister
	listers    map[schema.GroupVersionResource]cache.GenericLister
	synced     []cache.InformerSynced
	start      []func(<-chan struct{})
	disc       discovery.DiscoveryInterface
	dyn        dynamicinformer.DynamicSharedInformerFactory
	notifier   cache.ResourceEventHandler

	mu      sync.Mutex
	changed chan struct{}

	// decoded holds the typed form of each policy object by UID and resourceVersion, so
	// that the answers every watch recomputes on a change do not convert the same
	// unstructured objects again; entries go when their object changes or is deleted.
	decoded sync.Map
}

// NewIndex builds the index; call Start before use.
func NewIndex(client kubernetes.Interface, dyn dynamic.Interface) (*Index, error) {
	x := &Index{changed: make(chan struct{}), listers: map[schema.GroupVersionResource]cache.GenericLister{}, disc: client.Discovery()}
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { x.notify() }, UpdateFunc: func(any, any) { x.notify() }, DeleteFunc: func(any) { x.notify() },
	}
	f := informers.NewSharedInformerFactory(client, 0)
	pods, nss := f.Core().V1().Pods(), f.Core().V1().Namespaces()
	for _, inf := range []cache.SharedIndexInformer{pods.Informer(), nss.Informer()} {
		if _, err := inf.AddEventHandler(notify); err != nil {
			return nil, err
		}
		x.synced = append(x.synced, inf.HasSynced)
	}
	x.Pods, x.Namespaces = pods.Lister(), nss.Lister()
	df := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	for _, gvr := range []schema.GroupVersionResource{api.Servers, api.ServerAuthorizations, api.AuthorizationPolicies, api.MeshTLSAuthentications, api.NetworkAuthentications} {
		gi := df.ForResource(gvr)
		if _, err := gi.Informer().AddEventHandler(notify); err != nil {
			return nil, err
		}
		if _, err := gi.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(old, _ any) { x.forget(old) }, DeleteFunc: x.forget,
		}); err != nil {
			return nil, err
		}
		x.listers[gvr] = gi.Lister()
		x.synced = append(x.synced, gi.Informer().HasSynced)
	}
	x.start = []func(<-chan struct{}){f.Start, df.Start}
	x.dyn, x.notifier = df, notify
	return x, nil
}

// watchRoutes adds informers over the route kinds the API server serves; a kind whose
// CRD is not installed is skipped (restart the controller to pick it up).
func (x *Index) watchRoutes() error {
	for _, gvr := range RouteResources {
		rs, err := x.disc.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("discovering %s: %w", gvr.GroupVersion(), err)
		}
		if rs == nil || !slices.ContainsFunc(rs.APIResources, func(r metav1.APIResource) bool { return r.Name == gvr.Resource }) {
			continue
		}
		gi := x.dyn.ForResource(gvr)
		if _, err := gi.Informer().AddEventHandler(x.notifier); err != nil {
			return fmt.Errorf("watching %s: %w", gvr, err)
		}
		if _, err := gi.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(old, _ any) { x.forget(old) }, DeleteFunc: x.forget,
		}); err != nil {
			return fmt.Errorf("watching %s: %w", gvr, err)
		}
		x.listers[gvr] = gi.Lister()
		x.synced = append(x.synced, gi.Informer().HasSynced)
	}
	return nil
}

// Start runs the informers until ctx ends and waits up to timeout for their caches.
func (x *Index) Start(ctx context.Context, timeout time.Duration) error {
	if err := x.watchRoutes(); err != nil {
		return err
	}
	for _, s := range x.start {
		s(ctx.Done())
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), x.synced...) {
		return fmt.Errorf("informer caches did not sync within %s (check RBAC and that the policy CRDs are installed)", timeout)
	}
	return nil
}

// Changed returns a channel closed at the next change of any watched object.
func (x *Index) Changed() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.changed
}

func (x *Index) notify() {
	x.mu.Lock()
	close(x.changed)
	x.changed = make(chan struct{})
	x.mu.Unlock()
}

// list decodes every object of gvr in ns into a new T.
func list[T any](x *Index, gvr schema.GroupVersionResource, ns string) []*T {
	l, ok := x.listers[gvr]
	if !ok {
		return nil // a route kind the API server does not serve
	}
	objs, err := l.ByNamespace(ns).List(labels.Everything())
	if err != nil {
		return nil
	}
	out := make([]*T, 0, len(objs))
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			if v := decode[T](x, u); v != nil {
				out = append(out, v)
			}
		}
	}
	return out
}

// decode returns the typed form of u, shared by every caller (read only), or nil when u
// does not decode into T.
func decode[T any](x *Index, u *unstructured.Unstructured) *T {
	key := decodedKey(u)
	if key != "" {
		if v, ok := x.decoded.Load(key); ok {
			if t, ok := v.(*T); ok {
				return t
			}
		}
	}
	v := new(T)
	if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v) != nil {
		return nil
	}
	if key != "" {
		x.decoded.Store(key, v)
	}
	return v
}

func decodedKey(u *unstructured.Unstructured) string {
	uid, rv := u.GetUID(), u.GetResourceVersion()
	if uid == "" || rv == "" {
		return ""
	}
	return string(uid) + "/" + rv
}

// forget drops the decoded form of an object that changed or was deleted.
func (x *Index) forget(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if key := decodedKey(u); key != "" {
			x.decoded.Delete(key)
		}
	}
}

func get[T any](x *Index, gvr schema.GroupVersionResource, ns, name string) *T {
	o, err := x.listers[gvr].ByNamespace(ns).Get(name)
	if err != nil {
		return nil
	}
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	return decode[T](x, u)
}

func (x *Index) pod(ns, name string) *corev1.Pod {
	p, err := x.Pods.Pods(ns).Get(name)
	if err != nil {
		return nil
	}
	return p
}
