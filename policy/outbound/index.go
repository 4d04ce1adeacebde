package outbound

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Index is the informer-backed view of Services with a change signal.
type Index struct {
	services corelisters.ServiceLister
	byIP     cache.Indexer
	synced   []cache.InformerSynced
	start    func(<-chan struct{})

	mu      sync.Mutex
	changed chan struct{}
}

// NewIndex builds the index over client; call Start before use.
func NewIndex(client kubernetes.Interface) (*Index, error) {
	x := &Index{changed: make(chan struct{})}
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

// Start runs the informers until ctx ends and waits up to timeout for their caches.
func (x *Index) Start(ctx context.Context, timeout time.Duration) error {
	x.start(ctx.Done())
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), x.synced...) {
		return fmt.Errorf("service informer cache did not sync within %s (check RBAC)", timeout)
	}
	return nil
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
