// Package cluster keeps the destination service's view of the cluster in shared
// informers (Services, EndpointSlices, Pods, ServiceProfiles) and tells each watcher when
// something its answer depends on changed (see the Key functions), so that each stream
// recomputes its answer on its own goroutine, and only when it may differ.
package cluster

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	sp "github.com/l5d-go/l5d/pkg/apis/serviceprofile"
	"github.com/l5d-go/l5d/pkg/k8s"
)

// ServiceProfiles is the ServiceProfile resource.
var ServiceProfiles = schema.GroupVersionResource{Group: sp.Group, Version: sp.Version, Resource: sp.Resource}

// Index is the informer-backed view. Its reads are safe for concurrent use.
type Index struct {
	Services   corelisters.ServiceLister
	Slices     discoverylisters.EndpointSliceLister
	Pods       corelisters.PodLister
	Namespaces corelisters.NamespaceLister
	// Nodes gives the topology zone of a client's node (zone_locality). No answer is
	// recomputed when a node's labels change.
	Nodes    corelisters.NodeLister
	profiles cache.GenericLister
	podIdx   cache.Indexer
	sliceIdx cache.Indexer

	informers *k8s.Informers
	// changes wakes the streams waiting on a key (see the Key functions) at the next
	// change of what it names, or at a change the index cannot attribute.
	changes *k8s.Changes
}

// Change keys: what a stream's answer depends on. A change closes the channels of the
// keys it affects, so only the streams whose answer may differ wake up.

// EndpointsKey names what the endpoints of Service ns/name depend on: the Service, its
// EndpointSlices and the pods they point to.
func EndpointsKey(ns, name string) k8s.Key { return k8s.Key{Scope: "endpoints/" + ns, Name: name} }

// ProfileKey names what the profile of Service ns/name depends on: the Service and the
// ServiceProfiles named after it (in any namespace: clients' own take precedence).
func ProfileKey(ns, name string) k8s.Key { return k8s.Key{Scope: "profile/" + ns, Name: name} }

// AddrKey names what the profile of an IP address depends on: the Services with that
// cluster IP and the pods with that pod IP.
func AddrKey(ip netip.Addr) k8s.Key { return k8s.Key{Scope: "addr", Name: ip.Unmap().String()} }

// Index names: pods by IP, EndpointSlices by "<ns>/<service>".
const (
	byIP      = "podIP"
	byService = "service"
	byPod     = "pod"
)

// New builds the index; call Start before use. dyn may be nil to run without
// ServiceProfiles (profiles then have no routes).
func New(client kubernetes.Interface, dyn dynamic.Interface) (*Index, error) {
	x := &Index{informers: k8s.NewInformers(client, dyn), changes: k8s.NewChanges()}
	f := x.informers.Kube
	svcNotify := x.changes.Handler(func(obj any) ([]k8s.Key, bool) {
		s, ok := obj.(*corev1.Service)
		if !ok {
			return nil, false
		}
		keys := []k8s.Key{EndpointsKey(s.Namespace, s.Name), ProfileKey(s.Namespace, s.Name)}
		for _, ip := range append([]string{s.Spec.ClusterIP}, s.Spec.ClusterIPs...) {
			if a, err := netip.ParseAddr(ip); err == nil {
				keys = append(keys, AddrKey(a))
			}
		}
		return keys, true
	})
	// EndpointSlice changes wake only the streams of their Service.
	sliceNotify := x.changes.Handler(func(obj any) ([]k8s.Key, bool) {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
			return nil, false
		}
		return []k8s.Key{EndpointsKey(s.Namespace, s.Labels[discoveryv1.LabelServiceName])}, true
	})
	// A pod change wakes the streams of the Services whose EndpointSlices point to it and
	// those of its addresses. Pod status churn that does not change an answer (readiness
	// reaches streams through EndpointSlices) wakes nobody.
	podNotify := x.changes.Handler(func(obj any) ([]k8s.Key, bool) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return nil, false
		}
		var keys []k8s.Key
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				keys = append(keys, AddrKey(a))
			}
		}
		if x.sliceIdx != nil {
			objs, _ := x.sliceIdx.ByIndex(byPod, p.Namespace+"/"+p.Name)
			for _, o := range objs {
				if s, ok := o.(*discoveryv1.EndpointSlice); ok && s.Labels[discoveryv1.LabelServiceName] != "" {
					keys = append(keys, EndpointsKey(s.Namespace, s.Labels[discoveryv1.LabelServiceName]))
				}
			}
		}
		return keys, true
	}, k8s.IfChanged(func(old, cur any) bool {
		o, ok1 := old.(*corev1.Pod)
		c, ok2 := cur.(*corev1.Pod)
		return !ok1 || !ok2 || podChanged(o, c)
	}))
	// A ServiceProfile is named after the Service it describes: <svc>.<ns>.svc.<domain>.
	// One whose name is not of that form is looked up by no stream.
	profileNotify := x.changes.Handler(func(obj any) ([]k8s.Key, bool) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return nil, false
		}
		parts := strings.SplitN(u.GetName(), ".", 4)
		if len(parts) < 4 || parts[2] != "svc" {
			return nil, true
		}
		return []k8s.Key{ProfileKey(parts[1], parts[0])}, true
	}, k8s.KeysByName())
	svc := f.Core().V1().Services()
	sl := f.Discovery().V1().EndpointSlices()
	pods := f.Core().V1().Pods()
	nss := f.Core().V1().Namespaces()
	if err := sl.Informer().AddIndexers(cache.Indexers{byService: func(obj any) ([]string, error) {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
			return nil, nil
		}
		return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
	}, byPod: func(obj any) ([]string, error) {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return nil, nil
		}
		var pods []string
		for _, ep := range s.Endpoints {
			if r := ep.TargetRef; r != nil && r.Kind == "Pod" {
				ns := r.Namespace
				if ns == "" {
					ns = s.Namespace
				}
				pods = append(pods, ns+"/"+r.Name)
			}
		}
		return pods, nil
	}}); err != nil {
		return nil, err
	}
	if err := pods.Informer().AddIndexers(cache.Indexers{byIP: func(obj any) ([]string, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Spec.HostNetwork {
			return nil, nil
		}
		var ips []string
		for _, ip := range p.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		return ips, nil
	}}); err != nil {
		return nil, err
	}
	for inf, h := range map[cache.SharedIndexInformer]cache.ResourceEventHandler{
		svc.Informer(): svcNotify, sl.Informer(): sliceNotify, pods.Informer(): podNotify,
	} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, err
		}
	}
	// No answer depends on Namespaces; their cache only has to be synced. Nodes are read
	// when a stream starts or recomputes (the client's zone).
	nodes := f.Core().V1().Nodes()
	nss.Informer()
	nodes.Informer()
	x.Services, x.Slices, x.Pods, x.Namespaces, x.Nodes = svc.Lister(), sl.Lister(), pods.Lister(), nss.Lister(), nodes.Lister()
	x.podIdx = pods.Informer().GetIndexer()
	x.sliceIdx = sl.Informer().GetIndexer()
	if df := x.informers.Dynamic; df != nil {
		pi := df.ForResource(ServiceProfiles)
		if _, err := pi.Informer().AddEventHandler(profileNotify); err != nil {
			return nil, err
		}
		x.profiles = pi.Lister()
	}
	return x, nil
}

// Start runs the informers until ctx ends and waits up to timeout for their caches.
func (x *Index) Start(ctx context.Context, timeout time.Duration) error {
	if err := x.informers.Start(ctx, timeout); err != nil {
		return fmt.Errorf("destination caches (check RBAC and that the ServiceProfile CRD is installed): %w", err)
	}
	return nil
}

// ChangedFor returns a channel closed at the next change that may affect key (one of
// EndpointsKey, ProfileKey, AddrKey). Take it before reading, then wait on it after
// answering.
func (x *Index) ChangedFor(key k8s.Key) <-chan struct{} { return x.changes.For(key) }

// podChanged reports whether an update touched what answers depend on.
func podChanged(o, c *corev1.Pod) bool {
	if !maps.Equal(o.Labels, c.Labels) || !maps.Equal(o.Annotations, c.Annotations) ||
		o.Spec.ServiceAccountName != c.Spec.ServiceAccountName || o.Status.Phase != c.Status.Phase ||
		(o.DeletionTimestamp == nil) != (c.DeletionTimestamp == nil) || len(o.Status.PodIPs) != len(c.Status.PodIPs) ||
		len(o.Spec.Containers) != len(c.Spec.Containers) || len(o.Spec.InitContainers) != len(c.Spec.InitContainers) {
		return true
	}
	for i := range o.Status.PodIPs {
		if o.Status.PodIPs[i].IP != c.Status.PodIPs[i].IP {
			return true
		}
	}
	return false
}

// SlicesOf lists the EndpointSlices of a Service.
func (x *Index) SlicesOf(ns, svc string) ([]*discoveryv1.EndpointSlice, error) {
	objs, err := x.sliceIdx.ByIndex(byService, ns+"/"+svc)
	if err != nil {
		return nil, err
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*discoveryv1.EndpointSlice); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// PodByIP returns a running pod with ip, or nil.
func (x *Index) PodByIP(ip netip.Addr) *corev1.Pod {
	objs, err := x.podIdx.ByIndex(byIP, ip.String())
	if err != nil {
		return nil
	}
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil {
			return p
		}
	}
	return nil
}

// ServiceByClusterIP returns the Service whose ClusterIP is ip, or nil.
func (x *Index) ServiceByClusterIP(ip netip.Addr) *corev1.Service {
	svcs, err := x.Services.List(labels.Everything())
	if err != nil {
		return nil
	}
	for _, s := range svcs {
		for _, c := range s.Spec.ClusterIPs {
			if a, err := netip.ParseAddr(c); err == nil && a == ip {
				return s
			}
		}
	}
	return nil
}

// Profile returns the ServiceProfile ns/name, or nil when there is none (or it does not
// decode, which the validator prevents).
func (x *Index) Profile(ns, name string) *sp.ServiceProfile {
	if x.profiles == nil {
		return nil
	}
	obj, err := x.profiles.ByNamespace(ns).Get(name)
	if err != nil {
		return nil
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	var p sp.ServiceProfile
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
		return nil
	}
	return &p
}
