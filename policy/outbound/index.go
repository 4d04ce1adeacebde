package outbound

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/pkg/k8s"
)

// Index is the informer-backed view of Services and the routes attached to them, with a
// change signal.
type Index struct {
	services corelisters.ServiceLister
	byIP     cache.Indexer

	informers *k8s.Informers
	changes   *k8s.Changes

	// mu guards routes, filled at Start.
	mu     sync.Mutex
	routes map[schema.GroupVersionResource]cache.GenericLister
}

// NewIndex builds the index over the informer set inf, which it shares with the rest of
// the component (the inbound index reads the same route informers); call Start before
// use. With a dynamic client in inf, the index also watches the route kinds the API
// server serves (RouteResources); without, it knows no routes.
func NewIndex(inf *k8s.Informers) (*Index, error) {
	x := &Index{informers: inf, changes: k8s.NewChanges(), routes: map[schema.GroupVersionResource]cache.GenericLister{}}
	svcs := inf.Kube.Core().V1().Services()
	if err := svcs.Informer().AddIndexers(cache.Indexers{clusterIPIndex: clusterIPs}); err != nil {
		return nil, fmt.Errorf("indexing services by cluster IP: %w", err)
	}
	x.byIP = svcs.Informer().GetIndexer()
	if _, err := svcs.Informer().AddEventHandler(x.changes.Handler(anyChange)); err != nil {
		return nil, fmt.Errorf("watching services: %w", err)
	}
	x.services = svcs.Lister()
	return x, nil
}

// anyChange attributes a change to no key: it wakes the watchers of Changed only.
func anyChange(any) ([]k8s.Key, bool) { return nil, true }

// Start runs the informers until ctx ends and waits up to timeout for their caches. Route
// kinds whose CRD is not installed at start are skipped (restart to pick them up).
func (x *Index) Start(ctx context.Context, timeout time.Duration) error {
	if err := x.watchRoutes(); err != nil {
		return err
	}
	if err := x.informers.Start(ctx, timeout); err != nil {
		return fmt.Errorf("service and route caches (check RBAC): %w", err)
	}
	return nil
}

// watchRoutes adds informers over the route kinds and EgressNetworks the API server
// serves.
func (x *Index) watchRoutes() error {
	notify := x.changes.Handler(anyChange, k8s.IfChanged(routeChanged))
	// Each kind is read at the first of its versions the API server serves, and listed
	// under the first (TCPRoute and TLSRoute: v1, else v1alpha2, the same fields).
	kinds := [][]schema.GroupVersionResource{{api.EgressNetworks}, {TCPRoutes, tcpRoutesV1alpha2}, {TLSRoutes, tlsRoutesV1alpha2}}
	for _, gvr := range RouteResources {
		kinds = append(kinds, []schema.GroupVersionResource{gvr})
	}
	for _, versions := range kinds {
		gi, ok, err := x.informers.Optional(versions...)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if _, err := gi.Informer().AddEventHandler(notify); err != nil {
			return fmt.Errorf("watching %s: %w", versions[0], err)
		}
		x.mu.Lock()
		x.routes[versions[0]] = gi.Lister()
		x.mu.Unlock()
	}
	return nil
}

// The Gateway API's connection-level route kinds, watched when served (at v1, else at
// v1alpha2).
var (
	TCPRoutes         = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "tcproutes"}
	TLSRoutes         = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "tlsroutes"}
	tcpRoutesV1alpha2 = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1alpha2", Resource: "tcproutes"}
	tlsRoutesV1alpha2 = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1alpha2", Resource: "tlsroutes"}
)

// routeChanged reports whether a route update may change an answer: not when only the
// route's status changed (the status writer's own updates must not wake every watch).
func routeChanged(o, n any) bool {
	ou, ok1 := o.(*unstructured.Unstructured)
	nu, ok2 := n.(*unstructured.Unstructured)
	return !ok1 || !ok2 || ou.GetGeneration() != nu.GetGeneration() || !equality.Semantic.DeepEqual(ou.GetAnnotations(), nu.GetAnnotations()) ||
		!equality.Semantic.DeepEqual(ou.GetLabels(), nu.GetLabels())
}

// RouteResources are the route kinds the index watches when their CRDs are installed.
var RouteResources = []schema.GroupVersionResource{
	api.HTTPRoutes,
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "grpcroutes"},
}

// Changed returns a channel closed at the next change of any Service, route or
// EgressNetwork.
func (x *Index) Changed() <-chan struct{} { return x.changes.Any() }

func (x *Index) service(ns, name string) *corev1.Service {
	s, err := x.services.Services(ns).Get(name)
	if err != nil {
		return nil
	}
	return s
}

const clusterIPIndex = "clusterIP"

// clusterIPs indexes a Service by its cluster IPs in canonical form.
func clusterIPs(obj any) ([]string, error) {
	s, ok := obj.(*corev1.Service)
	if !ok {
		return nil, nil
	}
	var out []string
	for _, ip := range append([]string{s.Spec.ClusterIP}, s.Spec.ClusterIPs...) {
		if a, err := netip.ParseAddr(ip); err == nil {
			out = append(out, a.String())
		}
	}
	return out, nil
}

// byClusterIP returns the Service whose cluster IP is a, or nil.
func (x *Index) byClusterIP(a netip.Addr) *corev1.Service {
	objs, err := x.byIP.ByIndex(clusterIPIndex, a.Unmap().String())
	if err != nil {
		return nil
	}
	for _, o := range objs {
		if s, ok := o.(*corev1.Service); ok {
			return s
		}
	}
	return nil
}
