// Package inbound serves io.linkerd.proxy.inbound.InboundServerPolicies: for a pod and
// port it answers the protocol and the authorizations the pod's proxy enforces, from the
// Server that selects the port and the AuthorizationPolicies bound to it, or from the
// default policy (pod annotation, namespace annotation, cluster default).
package inbound

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
// optional kinds (OptionalResources) the API server serves at Start.
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
	// waiters holds, by namespace and pod name, the channels ChangedFor handed out that
	// no change has closed yet.
	waiters map[string]map[string]chan struct{}

	// decoded holds the typed form of each policy object by UID and resourceVersion, so
	// that the answers every watch recomputes on a change do not convert the same
	// unstructured objects again; entries go when their object changes or is deleted.
	decoded sync.Map
}

// NewIndex builds the index; call Start before use.
func NewIndex(client kubernetes.Interface, dyn dynamic.Interface) (*Index, error) {
	x := &Index{changed: make(chan struct{}), waiters: map[string]map[string]chan struct{}{},
		listers: map[schema.GroupVersionResource]cache.GenericLister{}, disc: client.Discovery()}
	// Each kind of change wakes only the watches whose answer it can affect: a pod's own
	// watches, its namespace's (policy objects and the namespace's default), or those of
	// the pods an authentication reaches through AuthorizationPolicies.
	handler := func(wake func(obj any)) cache.ResourceEventHandler {
		return cache.ResourceEventHandlerFuncs{
			AddFunc: wake, UpdateFunc: func(_, obj any) { wake(obj) }, DeleteFunc: wake,
		}
	}
	namespaced := handler(func(obj any) { x.notify(wakeNamespace(objectKey(obj))) })
	f := informers.NewSharedInformerFactory(client, 0)
	pods, nss := f.Core().V1().Pods(), f.Core().V1().Namespaces()
	for inf, h := range map[cache.SharedIndexInformer]cache.ResourceEventHandler{
		pods.Informer(): handler(func(obj any) { x.notify(wakePod(objectKey(obj))) }),
		nss.Informer():  handler(func(obj any) { _, name := objectKey(obj); x.notify(wakeNamespace(name, "")) }),
	} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, err
		}
		x.synced = append(x.synced, inf.HasSynced)
	}
	x.Pods, x.Namespaces = pods.Lister(), nss.Lister()
	df := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	for _, gvr := range []schema.GroupVersionResource{api.Servers, api.ServerAuthorizations, api.AuthorizationPolicies, api.MeshTLSAuthentications, api.NetworkAuthentications} {
		gi := df.ForResource(gvr)
		h := namespaced
		if gvr == api.MeshTLSAuthentications || gvr == api.NetworkAuthentications {
			h = handler(func(obj any) { x.notify(x.wakeAuthnUsers(gvr, obj)...) })
		}
		if _, err := gi.Informer().AddEventHandler(h); err != nil {
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
	x.dyn, x.notifier = df, namespaced
	return x, nil
}

// OptionalResources are the kinds watched only when the API server serves them: the
// route kinds and the HTTPLocalRateLimitPolicy of current Linkerd.
var OptionalResources = append(append([]schema.GroupVersionResource{}, RouteResources...), api.HTTPLocalRateLimitPolicies)

// watchOptional adds informers over the OptionalResources the API server serves; a kind
// whose CRD is not installed is skipped (restart the controller to pick it up).
func (x *Index) watchOptional() error {
	for _, gvr := range OptionalResources {
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
	if err := x.watchOptional(); err != nil {
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

// ChangedFor returns a channel closed at the next change that can affect the policy of
// pod ns/name: a change to the pod, to its namespace or to a policy object or route in
// it, or to an authentication an AuthorizationPolicy applying to the pod may require.
func (x *Index) ChangedFor(ns, name string) <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	pods := x.waiters[ns]
	if pods == nil {
		pods = map[string]chan struct{}{}
		x.waiters[ns] = pods
	}
	ch := pods[name]
	if ch == nil {
		ch = make(chan struct{})
		pods[name] = ch
	}
	return ch
}

// wake selects the ChangedFor channels a change closes; it is called with x.mu held.
type wake func(waiters map[string]map[string]chan struct{})

func wakePod(ns, name string) wake {
	return func(w map[string]map[string]chan struct{}) {
		if ch, ok := w[ns][name]; ok {
			close(ch)
			delete(w[ns], name)
		}
	}
}

// wakeNamespace wakes every watch of a pod in ns (the name of a namespaced object is
// ignored).
func wakeNamespace(ns, _ string) wake {
	return func(w map[string]map[string]chan struct{}) {
		for _, ch := range w[ns] {
			close(ch)
		}
		delete(w, ns)
	}
}

func wakeAll(w map[string]map[string]chan struct{}) {
	for ns := range w {
		wakeNamespace(ns, "")(w)
	}
}

func (x *Index) notify(wakes ...wake) {
	x.mu.Lock()
	defer x.mu.Unlock()
	close(x.changed)
	x.changed = make(chan struct{})
	for _, w := range wakes {
		w(x.waiters)
	}
}

// objectKey returns the namespace and name of an informer event's object.
func objectKey(obj any) (ns, name string) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if o, ok := obj.(metav1.Object); ok {
		return o.GetNamespace(), o.GetName()
	}
	return "", ""
}

// wakeAuthnUsers finds the pods whose policy may use the authentication obj of kind gvr:
// those selected by a Server that an AuthorizationPolicy requiring it targets, and every
// pod of the namespace of one that targets anything else (a namespace or a route).
func (x *Index) wakeAuthnUsers(gvr schema.GroupVersionResource, obj any) []wake {
	ns, name := objectKey(obj)
	if name == "" {
		return []wake{wakeAll}
	}
	kind := "meshtlsauthentication"
	if gvr == api.NetworkAuthentications {
		kind = "networkauthentication"
	}
	aps, err := x.listers[api.AuthorizationPolicies].List(labels.Everything())
	if err != nil {
		return []wake{wakeAll}
	}
	var wakes []wake
	for _, o := range aps {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		ap := decode[api.AuthorizationPolicy](x, u)
		if ap == nil || !slices.ContainsFunc(ap.Spec.RequiredAuthenticationRefs, func(r api.TargetRef) bool {
			refNS := r.Namespace
			if refNS == "" {
				refNS = ap.Namespace
			}
			return strings.ToLower(r.Kind) == kind && r.Name == name && refNS == ns
		}) {
			continue
		}
		if strings.ToLower(ap.Spec.TargetRef.Kind) != "server" {
			wakes = append(wakes, wakeNamespace(ap.Namespace, ""))
			continue
		}
		srv := get[api.Server](x, api.Servers, ap.Namespace, ap.Spec.TargetRef.Name)
		if srv == nil || srv.Spec.PodSelector == nil {
			continue // the policy applies to no pod
		}
		sel, err := metav1.LabelSelectorAsSelector(srv.Spec.PodSelector)
		if err != nil {
			continue // an invalid selector selects no pod
		}
		pods, err := x.Pods.Pods(ap.Namespace).List(sel)
		if err != nil {
			wakes = append(wakes, wakeNamespace(ap.Namespace, ""))
			continue
		}
		for _, p := range pods {
			wakes = append(wakes, wakePod(p.Namespace, p.Name))
		}
	}
	return wakes
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
