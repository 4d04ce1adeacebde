// Package inbound serves io.linkerd.proxy.inbound.InboundServerPolicies: for a pod and
// port it answers the protocol and the authorizations the pod's proxy enforces, from the
// Server that selects the port and the AuthorizationPolicies bound to it, or from the
// default policy (pod annotation, namespace annotation, cluster default).
package inbound

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/pkg/k8s"
)

// Index is the informer-backed view of pods, namespaces, policy resources and the
// optional kinds (OptionalResources) the API server serves at Start.
type Index struct {
	Pods       corelisters.PodLister
	Namespaces corelisters.NamespaceLister
	listers    map[schema.GroupVersionResource]cache.GenericLister
	informers  *k8s.Informers
	// namespaced wakes the watches of the pods in a changed object's namespace.
	namespaced cache.ResourceEventHandler
	// changes wakes watches by pod: Key{Scope: namespace, Name: pod}.
	changes *k8s.Changes

	// decoded holds the typed form of each policy object by UID and resourceVersion, so
	// that the answers every watch recomputes on a change do not convert the same
	// unstructured objects again; entries go when their object changes or is deleted.
	decoded sync.Map
}

// NewIndex builds the index over the informer set inf, which it shares with the rest of
// the component (the outbound index reads the same route informers); inf must have a
// dynamic client. Call Start before use.
func NewIndex(inf *k8s.Informers) (*Index, error) {
	if inf.Dynamic == nil {
		return nil, errors.New("the inbound policy index needs a dynamic client for the policy resources")
	}
	x := &Index{informers: inf, changes: k8s.NewChanges(), listers: map[schema.GroupVersionResource]cache.GenericLister{}}
	// Each kind of change wakes only the watches whose answer it can affect: a pod's own
	// watches, its namespace's (policy objects and the namespace's default), or those of
	// the pods an authentication reaches through AuthorizationPolicies. Every key
	// depends only on the object's namespace and name.
	x.namespaced = x.changes.Handler(func(obj any) ([]k8s.Key, bool) {
		ns, name := objectKey(obj)
		return []k8s.Key{{Scope: ns}}, name != ""
	}, k8s.KeysByName())
	pods, nss := inf.Kube.Core().V1().Pods(), inf.Kube.Core().V1().Namespaces()
	for i, h := range map[cache.SharedIndexInformer]cache.ResourceEventHandler{
		pods.Informer(): x.changes.Handler(func(obj any) ([]k8s.Key, bool) {
			ns, name := objectKey(obj)
			return []k8s.Key{{Scope: ns, Name: name}}, name != ""
		}, k8s.KeysByName()),
		nss.Informer(): x.changes.Handler(func(obj any) ([]k8s.Key, bool) {
			_, name := objectKey(obj)
			return []k8s.Key{{Scope: name}}, name != ""
		}, k8s.KeysByName()),
	} {
		if _, err := i.AddEventHandler(h); err != nil {
			return nil, err
		}
	}
	x.Pods, x.Namespaces = pods.Lister(), nss.Lister()
	for _, gvr := range []schema.GroupVersionResource{api.Servers, api.ServerAuthorizations, api.AuthorizationPolicies, api.MeshTLSAuthentications, api.NetworkAuthentications} {
		h := x.namespaced
		if gvr == api.MeshTLSAuthentications || gvr == api.NetworkAuthentications {
			h = x.changes.Handler(func(obj any) ([]k8s.Key, bool) { return x.authnUsers(gvr, obj) }, k8s.KeysByName())
		}
		if err := x.watch(gvr, inf.Dynamic.ForResource(gvr), h); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// watch wakes watches through h at changes of gvr, forgets the decoded form of its
// objects that change, and lists gvr.
func (x *Index) watch(gvr schema.GroupVersionResource, gi informers.GenericInformer, h cache.ResourceEventHandler) error {
	if _, err := gi.Informer().AddEventHandler(h); err != nil {
		return fmt.Errorf("watching %s: %w", gvr, err)
	}
	if _, err := gi.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, _ any) { x.forget(old) }, DeleteFunc: x.forget,
	}); err != nil {
		return fmt.Errorf("watching %s: %w", gvr, err)
	}
	x.listers[gvr] = gi.Lister()
	return nil
}

// OptionalResources are the kinds watched only when the API server serves them: the
// route kinds and the HTTPLocalRateLimitPolicy of current Linkerd.
var OptionalResources = append(append([]schema.GroupVersionResource{}, RouteResources...), api.HTTPLocalRateLimitPolicies)

// watchOptional adds informers over the OptionalResources the API server serves; a kind
// whose CRD is not installed is skipped (restart the controller to pick it up).
func (x *Index) watchOptional() error {
	for _, gvr := range OptionalResources {
		gi, ok, err := x.informers.Optional(gvr)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := x.watch(gvr, gi, x.namespaced); err != nil {
			return err
		}
	}
	return nil
}

// Start runs the informers until ctx ends and waits up to timeout for their caches.
func (x *Index) Start(ctx context.Context, timeout time.Duration) error {
	if err := x.watchOptional(); err != nil {
		return err
	}
	if err := x.informers.Start(ctx, timeout); err != nil {
		return fmt.Errorf("inbound policy caches (check RBAC and that the policy CRDs are installed): %w", err)
	}
	return nil
}

// ChangedFor returns a channel closed at the next change that can affect the policy of
// pod ns/name: a change to the pod, to its namespace or to a policy object or route in
// it, or to an authentication an AuthorizationPolicy applying to the pod may require.
func (x *Index) ChangedFor(ns, name string) <-chan struct{} {
	return x.changes.For(k8s.Key{Scope: ns, Name: name})
}

// objectKey returns the namespace and name of an informer event's object.
func objectKey(obj any) (ns, name string) {
	if o, ok := obj.(metav1.Object); ok {
		return o.GetNamespace(), o.GetName()
	}
	return "", ""
}

// authnUsers finds the pods whose policy may use the authentication obj of kind gvr:
// those selected by a Server that an AuthorizationPolicy requiring it targets, and every
// pod of the namespace of one that targets anything else (a namespace or a route). It
// reports false when it cannot tell.
func (x *Index) authnUsers(gvr schema.GroupVersionResource, obj any) ([]k8s.Key, bool) {
	ns, name := objectKey(obj)
	if name == "" {
		return nil, false
	}
	kind := "meshtlsauthentication"
	if gvr == api.NetworkAuthentications {
		kind = "networkauthentication"
	}
	aps, err := x.listers[api.AuthorizationPolicies].List(labels.Everything())
	if err != nil {
		return nil, false
	}
	var keys []k8s.Key
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
			keys = append(keys, k8s.Key{Scope: ap.Namespace})
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
			keys = append(keys, k8s.Key{Scope: ap.Namespace})
			continue
		}
		for _, p := range pods {
			keys = append(keys, k8s.Key{Scope: p.Namespace, Name: p.Name})
		}
	}
	return keys, true
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
