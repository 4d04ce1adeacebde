// Package cluster is metrics-api's view of the Kubernetes objects its answers name:
// workloads, pods, services, namespaces and ServiceProfiles, read through shared
// informers. It lists the resources a request selects with their pod counts (MESHED)
// and the service accounts their pods run as (for edges' identities).
package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/l5d-go/l5d/pkg/apis/serviceprofile"
	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/vizapi"
)

// Cache answers from informer caches. Create it with New, then Start it.
type Cache struct {
	factory  informers.SharedInformerFactory
	dfactory dynamicinformer.DynamicSharedInformerFactory
	listers  map[string]cache.GenericLister
	profiles cache.GenericLister
	pods     cache.Indexer
}

var profilesGVR = schema.GroupVersionResource{Group: serviceprofile.Group, Version: serviceprofile.Version, Resource: serviceprofile.Resource}

// New requests the informers metrics-api needs. dyn may be nil: ServiceProfiles are then
// not read (TopRoutes lists only the routes with traffic).
func New(client kubernetes.Interface, dyn dynamic.Interface) *Cache {
	f := k8s.NewInformerFactory(client, 10*time.Minute)
	c := &Cache{factory: f, listers: map[string]cache.GenericLister{}}
	gen := func(gvr schema.GroupVersionResource) cache.GenericLister {
		i, err := f.ForResource(gvr)
		if err != nil {
			panic(fmt.Sprintf("informer for %v: %v", gvr, err)) // a typo in the table below
		}
		return i.Lister()
	}
	apps := func(r string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: r}
	}
	core := func(r string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Version: "v1", Resource: r}
	}
	batch := func(r string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: r}
	}
	c.listers[vizapi.Deployment] = gen(apps("deployments"))
	c.listers[vizapi.StatefulSet] = gen(apps("statefulsets"))
	c.listers[vizapi.DaemonSet] = gen(apps("daemonsets"))
	c.listers[vizapi.ReplicaSet] = gen(apps("replicasets"))
	c.listers[vizapi.Job] = gen(batch("jobs"))
	c.listers[vizapi.CronJob] = gen(batch("cronjobs"))
	c.listers[vizapi.ReplicationController] = gen(core("replicationcontrollers"))
	c.listers[vizapi.Service] = gen(core("services"))
	c.listers[vizapi.Namespace] = gen(core("namespaces"))
	c.listers[vizapi.Pod] = gen(core("pods"))
	c.pods = f.Core().V1().Pods().Informer().GetIndexer()
	if dyn != nil {
		c.dfactory = dynamicinformer.NewDynamicSharedInformerFactory(dyn, 10*time.Minute)
		c.profiles = c.dfactory.ForResource(profilesGVR).Lister()
	}
	return c
}

// Start starts the informers and waits for their caches (see k8s.StartAndSync).
func (c *Cache) Start(ctx context.Context, timeout time.Duration) error {
	if err := k8s.StartAndSync(ctx, c.factory, timeout); err != nil {
		return fmt.Errorf("metrics-api caches: %w", err)
	}
	if c.dfactory != nil {
		if err := k8s.StartAndSync(ctx, c.dfactory, timeout); err != nil {
			return fmt.Errorf("metrics-api ServiceProfile cache (is the CRD installed?): %w", err)
		}
	}
	return nil
}

// Object is a listed resource with its pods' counts.
type Object struct {
	Resource vizapi.Resource
	// Meshed, Running and Failed count its pods: running ones with a proxy, running
	// ones, failed ones.
	Meshed, Running, Failed uint64
	// Status is a pod's phase (pods only).
	Status string
	// ServiceAccounts are those its running pods use, sorted.
	ServiceAccounts []string
}

// List returns the objects of r.Type named by r (every one in r.Namespace, or every
// namespace when empty, without a name), narrowed by a label selector, sorted by
// namespace and name. Authorities are not Kubernetes objects: it returns none for them.
// A named object that does not exist is an error.
func (c *Cache) List(r vizapi.Resource, selector string) ([]Object, error) {
	if r.Type == vizapi.Authority {
		return nil, nil
	}
	lister, ok := c.listers[r.Type]
	if !ok {
		return nil, fmt.Errorf("cannot list resources of type %q", r.Type)
	}
	sel := labels.Everything()
	if selector != "" {
		var err error
		if sel, err = labels.Parse(selector); err != nil {
			return nil, fmt.Errorf("label selector %q: %w", selector, err)
		}
	}
	var objs []runtime.Object
	switch {
	case r.Name != "" && r.Type == vizapi.Namespace:
		o, err := lister.Get(r.Name)
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", r.Name, err)
		}
		objs = []runtime.Object{o}
	case r.Name != "":
		o, err := lister.ByNamespace(r.Namespace).Get(r.Name)
		if err != nil {
			return nil, fmt.Errorf("%s %s/%s: %w", r.Type, r.Namespace, r.Name, err)
		}
		objs = []runtime.Object{o}
	case r.Namespace != "" && r.Type != vizapi.Namespace:
		var err error
		if objs, err = lister.ByNamespace(r.Namespace).List(sel); err != nil {
			return nil, err
		}
	default:
		var err error
		if objs, err = lister.List(sel); err != nil {
			return nil, err
		}
	}
	out := make([]Object, 0, len(objs))
	for _, o := range objs {
		m, err := meta(o)
		if err != nil {
			return nil, err
		}
		res := vizapi.Resource{Type: r.Type, Namespace: m.GetNamespace(), Name: m.GetName()}
		if r.Type == vizapi.Namespace {
			res.Namespace = ""
		}
		obj := Object{Resource: res}
		pods, err := c.Pods(res)
		if err != nil {
			return nil, err
		}
		sas := map[string]bool{}
		for _, p := range pods {
			switch p.Status.Phase {
			case corev1.PodRunning:
				obj.Running++
				if inject.HasProxy(&p.Spec) {
					obj.Meshed++
				}
				sas[serviceAccount(p)] = true
			case corev1.PodFailed:
				obj.Failed++
			}
		}
		if p, ok := o.(*corev1.Pod); ok {
			obj.Status = string(p.Status.Phase)
		}
		for sa := range sas {
			obj.ServiceAccounts = append(obj.ServiceAccounts, sa)
		}
		slices.Sort(obj.ServiceAccounts)
		out = append(out, obj)
	}
	slices.SortFunc(out, func(a, b Object) int {
		return strings.Compare(a.Resource.Namespace+"/"+a.Resource.Name, b.Resource.Namespace+"/"+b.Resource.Name)
	})
	return out, nil
}

func meta(o runtime.Object) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("listed object %T has no metadata", o)
	}
	return m, nil
}

func serviceAccount(p *corev1.Pod) string {
	if p.Spec.ServiceAccountName == "" {
		return "default"
	}
	return p.Spec.ServiceAccountName
}

// Pods returns the pods of a resource: the pod itself, a workload's (through owner
// references: deployment -> replicaset -> pod, cronjob -> job -> pod), a service's (its
// selector) or a namespace's.
func (c *Cache) Pods(r vizapi.Resource) ([]*corev1.Pod, error) {
	var all []any
	if r.Type == vizapi.Namespace {
		all, _ = c.pods.ByIndex(cache.NamespaceIndex, r.Name)
	} else {
		all, _ = c.pods.ByIndex(cache.NamespaceIndex, r.Namespace)
	}
	var match func(*corev1.Pod) bool
	switch r.Type {
	case vizapi.Namespace:
		match = func(*corev1.Pod) bool { return true }
	case vizapi.Pod:
		match = func(p *corev1.Pod) bool { return p.Name == r.Name }
	case vizapi.Service:
		o, err := c.listers[vizapi.Service].ByNamespace(r.Namespace).Get(r.Name)
		if err != nil {
			return nil, fmt.Errorf("service %s/%s: %w", r.Namespace, r.Name, err)
		}
		svc := o.(*corev1.Service)
		if len(svc.Spec.Selector) == 0 {
			return nil, nil
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		match = func(p *corev1.Pod) bool { return sel.Matches(labels.Set(p.Labels)) }
	default:
		match = func(p *corev1.Pod) bool { return c.ownedBy(p.Namespace, p.OwnerReferences, r.Type, r.Name, 0) }
	}
	var out []*corev1.Pod
	for _, o := range all {
		if p, ok := o.(*corev1.Pod); ok && match(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// ownedBy follows controller owner references (two levels at most: replicaset ->
// deployment, job -> cronjob).
func (c *Cache) ownedBy(ns string, refs []metav1.OwnerReference, kind, name string, depth int) bool {
	for _, ref := range refs {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		k := strings.ToLower(ref.Kind)
		if k == kind && ref.Name == name {
			return true
		}
		if depth > 0 || (k != vizapi.ReplicaSet && k != vizapi.Job) {
			continue
		}
		lister := c.listers[k]
		o, err := lister.ByNamespace(ns).Get(ref.Name)
		if err != nil {
			continue
		}
		if m, err := meta(o); err == nil && c.ownedBy(ns, m.GetOwnerReferences(), kind, name, depth+1) {
			return true
		}
	}
	return false
}

// Owner returns the workload that owns a pod, following replicaset -> deployment and
// job -> cronjob, or ("pod", its name) when it has none.
func (c *Cache) Owner(p *corev1.Pod) (kind, name string) {
	kind, name = vizapi.Pod, p.Name
	refs := p.OwnerReferences
	for depth := 0; depth < 2; depth++ {
		var next []metav1.OwnerReference
		for _, ref := range refs {
			if ref.Controller == nil || !*ref.Controller {
				continue
			}
			kind, name = strings.ToLower(ref.Kind), ref.Name
			if l, ok := c.listers[kind]; ok && (kind == vizapi.ReplicaSet || kind == vizapi.Job) {
				if o, err := l.ByNamespace(p.Namespace).Get(ref.Name); err == nil {
					if m, err := meta(o); err == nil {
						next = m.GetOwnerReferences()
					}
				}
			}
		}
		if next == nil {
			break
		}
		refs = next
	}
	return kind, name
}

// AllPods returns every cached pod of namespace ns (every namespace when empty),
// narrowed by a label selector.
func (c *Cache) AllPods(ns, selector string) ([]*corev1.Pod, error) {
	sel := labels.Everything()
	if selector != "" {
		var err error
		if sel, err = labels.Parse(selector); err != nil {
			return nil, fmt.Errorf("label selector %q: %w", selector, err)
		}
	}
	var objs []any
	if ns == "" {
		objs = c.pods.List()
	} else {
		objs, _ = c.pods.ByIndex(cache.NamespaceIndex, ns)
	}
	var out []*corev1.Pod
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	return out, nil
}

// Services returns the services of namespace ns (every namespace when empty), sorted.
func (c *Cache) Services(ns string) ([]*corev1.Service, error) {
	objs, err := c.List(vizapi.Resource{Type: vizapi.Service, Namespace: ns}, "")
	if err != nil {
		return nil, err
	}
	out := make([]*corev1.Service, 0, len(objs))
	for _, o := range objs {
		s, err := c.listers[vizapi.Service].ByNamespace(o.Resource.Namespace).Get(o.Resource.Name)
		if err == nil {
			out = append(out, s.(*corev1.Service))
		}
	}
	return out, nil
}

// ServicesOf returns the services in the resource's namespace whose selectors select
// one of its pods, sorted by name.
func (c *Cache) ServicesOf(r vizapi.Resource) ([]*corev1.Service, error) {
	if r.Type == vizapi.Service {
		o, err := c.listers[vizapi.Service].ByNamespace(r.Namespace).Get(r.Name)
		if err != nil {
			return nil, fmt.Errorf("service %s/%s: %w", r.Namespace, r.Name, err)
		}
		return []*corev1.Service{o.(*corev1.Service)}, nil
	}
	pods, err := c.Pods(r)
	if err != nil {
		return nil, err
	}
	svcs, err := c.Services(r.Namespace)
	if err != nil {
		return nil, err
	}
	var out []*corev1.Service
	for _, s := range svcs {
		if len(s.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		for _, p := range pods {
			if p.Namespace == s.Namespace && sel.Matches(labels.Set(p.Labels)) {
				out = append(out, s)
				break
			}
		}
	}
	return out, nil
}

// ProfileRoutes returns the route names of the ServiceProfile for authority (its name,
// e.g. "web.emojivoto.svc.cluster.local") in namespace ns, if there is one.
func (c *Cache) ProfileRoutes(ns, authority string) ([]string, error) {
	if c.profiles == nil {
		return nil, nil
	}
	o, err := c.profiles.ByNamespace(ns).Get(authority)
	if err != nil {
		return nil, nil //nolint:nilerr // no profile: no declared routes
	}
	u, ok := o.(runtime.Unstructured)
	if !ok {
		return nil, fmt.Errorf("serviceprofile %s/%s: unexpected %T", ns, authority, o)
	}
	var sp serviceprofile.ServiceProfile
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), &sp); err != nil {
		return nil, fmt.Errorf("serviceprofile %s/%s: %w", ns, authority, err)
	}
	names := make([]string, 0, len(sp.Spec.Routes))
	for _, r := range sp.Spec.Routes {
		names = append(names, r.Name)
	}
	return names, nil
}
