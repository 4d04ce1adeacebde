package outbound

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// Index is the informer-backed view of Services and the routes attached to them, with a
// change signal.
type Index struct {
	services corelisters.ServiceLister
	byIP     cache.Indexer
	synced   []cache.InformerSynced
	start    func(<-chan struct{})

	disc   discovery.DiscoveryInterface
	dyn    dynamic.Interface
	routes map[schema.GroupVersionResource]cache.GenericLister

	mu      sync.Mutex
	changed chan struct{}
}

// NewIndex builds the index over client; call Start before use. With dyn, the index also
// watches the route kinds the API server serves (RouteResources); without, it knows no
// routes.
func NewIndex(client kubernetes.Interface, dyn dynamic.Interface) (*Index, error) {
	x := &Index{changed: make(chan struct{}), disc: client.Discovery(), dyn: dyn, routes: map[schema.GroupVersionResource]cache.GenericLister{}}
	f := informers.NewSharedInformerFactory(client, 0)
	svcs := f.Core().V1().Services()
	if err := svcs.Informer().AddIndexers(cache.Indexers{clusterIPIndex: clusterIPs}); err != nil {
		return nil, fmt.Errorf("indexing services by cluster IP: %w", err)
	}
	x.byIP = svcs.Informer().GetIndexer()
	if _, err := svcs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { x.notify() }, UpdateFunc: func(any, any) { x.notify() }, DeleteFunc: func(any) { x.notify() },
	}); err != nil {
		return nil, fmt.Errorf("watching services: %w", err)
	}
	x.services, x.synced, x.start = svcs.Lister(), []cache.InformerSynced{svcs.Informer().HasSynced}, f.Start
	return x, nil
}

// Start runs the informers until ctx ends and waits up to timeout for their caches. Route
// kinds whose CRD is not installed at start are skipped (restart to pick them up).
func (x *Index) Start(ctx context.Context, timeout time.Duration) error {
	if x.dyn != nil {
		if err := x.startRoutes(ctx); err != nil {
			return err
		}
	}
	x.start(ctx.Done())
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), x.synced...) {
		return fmt.Errorf("service and route informer caches did not sync within %s (check RBAC)", timeout)
	}
	return nil
}

// startRoutes starts informers over the route kinds and EgressNetworks the API server
// serves.
func (x *Index) startRoutes(ctx context.Context) error {
	df := dynamicinformer.NewDynamicSharedInformerFactory(x.dyn, 0)
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { x.notify() }, UpdateFunc: func(o, n any) { x.routeUpdated(o, n) }, DeleteFunc: func(any) { x.notify() },
	}
	// Each kind is read at the first of its versions the API server serves, and listed
	// under the first (TCPRoute and TLSRoute: v1, else v1alpha2, the same fields).
	kinds := [][]schema.GroupVersionResource{{api.EgressNetworks}, {TCPRoutes, tcpRoutesV1alpha2}, {TLSRoutes, tlsRoutesV1alpha2}}
	for _, gvr := range RouteResources {
		kinds = append(kinds, []schema.GroupVersionResource{gvr})
	}
	for _, versions := range kinds {
		for _, gvr := range versions {
			served, err := x.serves(gvr)
			if err != nil {
				return err
			}
			if !served {
				continue
			}
			gi := df.ForResource(gvr)
			if _, err := gi.Informer().AddEventHandler(notify); err != nil {
				return fmt.Errorf("watching %s: %w", gvr, err)
			}
			x.mu.Lock()
			x.routes[versions[0]] = gi.Lister()
			x.mu.Unlock()
			x.synced = append(x.synced, gi.Informer().HasSynced)
			break
		}
	}
	df.Start(ctx.Done())
	return nil
}

// serves reports whether the API server serves gvr.
func (x *Index) serves(gvr schema.GroupVersionResource) (bool, error) {
	rs, err := x.disc.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("discovering %s: %w", gvr.GroupVersion(), err)
	}
	return rs != nil && slices.ContainsFunc(rs.APIResources, func(r metav1.APIResource) bool { return r.Name == gvr.Resource }), nil
}

// The Gateway API's connection-level route kinds, watched when served (at v1, else at
// v1alpha2).
var (
	TCPRoutes         = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "tcproutes"}
	TLSRoutes         = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "tlsroutes"}
	tcpRoutesV1alpha2 = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1alpha2", Resource: "tcproutes"}
	tlsRoutesV1alpha2 = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1alpha2", Resource: "tlsroutes"}
)

// routeUpdated signals a change unless only the route's status changed (the status
// writer's own updates must not wake every watch).
func (x *Index) routeUpdated(o, n any) {
	ou, ok1 := o.(*unstructured.Unstructured)
	nu, ok2 := n.(*unstructured.Unstructured)
	if ok1 && ok2 && ou.GetGeneration() == nu.GetGeneration() && equality.Semantic.DeepEqual(ou.GetAnnotations(), nu.GetAnnotations()) &&
		equality.Semantic.DeepEqual(ou.GetLabels(), nu.GetLabels()) {
		return
	}
	x.notify()
}

// RouteResources are the route kinds the index watches when their CRDs are installed.
var RouteResources = []schema.GroupVersionResource{
	api.HTTPRoutes,
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "grpcroutes"},
}

// Changed returns a channel closed at the next change of any Service.
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
