// Package remote keeps the linked clusters the destination controller reads for
// pod-to-pod multicluster: for every Secret in the control plane's namespace labelled
// multicluster.linkerd.io/cluster-name (written by `linkerd multicluster link-gen`), a
// read-only index (cluster.Index, without ServiceProfiles) of that cluster's Services,
// EndpointSlices and Pods through the kubeconfig the Secret holds, with the cluster's
// trust domain (multicluster.linkerd.io/trust-domain) and DNS domain. Clusters come and
// go with their Secrets; cluster_store_size counts them.
package remote

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/l5d-go/l5d/destination/cluster"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"github.com/l5d-go/l5d/pkg/k8s"
)

// Cluster is one linked cluster.
type Cluster struct {
	Name          string
	TrustDomain   string
	ClusterDomain string
	// Index is nil until the cluster's caches have synced.
	index  atomic.Pointer[cluster.Index]
	cancel context.CancelFunc
	secret string // resourceVersion of the Secret it was built from
}

// Index returns the cluster's index, nil while its caches are not synced.
func (c *Cluster) Index() *cluster.Index { return c.index.Load() }

// Store holds the linked clusters. Create it with New, then Run.
type Store struct {
	kube      kubernetes.Interface
	namespace string
	log       *slog.Logger
	// SyncTimeout is how long to wait for a linked cluster's caches before logging
	// that they are not synced yet (and waiting again).
	SyncTimeout time.Duration

	mu       sync.Mutex
	clusters map[string]*Cluster
	// changes wakes the watchers of Changed.
	changes *k8s.Changes
	size    prometheus.Gauge
}

// New returns a store of the clusters whose Secrets are in namespace (the control
// plane's), registering cluster_store_size with reg (when not nil).
func New(kube kubernetes.Interface, namespace string, log *slog.Logger, reg prometheus.Registerer) *Store {
	s := &Store{kube: kube, namespace: namespace, log: log, SyncTimeout: time.Minute,
		clusters: map[string]*Cluster{}, changes: k8s.NewChanges(),
		size: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cluster_store_size", Help: "Linked clusters the destination controller reads for pod-to-pod multicluster."})}
	if reg != nil {
		reg.MustRegister(s.size)
	}
	return s
}

// Get returns the linked cluster named name.
func (s *Store) Get(name string) (*Cluster, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clusters[name]
	return c, ok
}

// Changed returns a channel closed at the next change of the set of clusters or of a
// cluster's readiness. Take it before reading, wait on it after.
func (s *Store) Changed() <-chan struct{} { return s.changes.Any() }

// notifyLocked wakes the watchers of Changed; it is called with s.mu held, so that a
// watcher that takes the channel and then reads sees the change or is woken by it.
func (s *Store) notifyLocked() {
	s.changes.Notify()
	s.size.Set(float64(len(s.clusters)))
}

// Run watches the Secrets until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactoryWithOptions(s.kube, 0, informers.WithNamespace(s.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = mc.LabelDestinationCluster }))
	inf := f.Core().V1().Secrets().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.apply(ctx, o) },
		UpdateFunc: func(_, o any) { s.apply(ctx, o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if sec, ok := o.(*corev1.Secret); ok {
				s.remove(sec.Labels[mc.LabelDestinationCluster])
			}
		},
	}); err != nil {
		return fmt.Errorf("watching linked clusters' secrets: %w", err)
	}
	f.Start(ctx.Done())
	<-ctx.Done()
	f.Shutdown()
	s.mu.Lock()
	for name, c := range s.clusters {
		c.cancel()
		delete(s.clusters, name)
	}
	s.mu.Unlock()
	return nil
}

func (s *Store) remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clusters[name]; ok {
		c.cancel()
		delete(s.clusters, name)
		s.log.Info("linked cluster removed", "cluster", name)
		s.notifyLocked()
	}
}

func (s *Store) apply(ctx context.Context, o any) {
	sec, ok := o.(*corev1.Secret)
	if !ok {
		return
	}
	name := sec.Labels[mc.LabelDestinationCluster]
	s.mu.Lock()
	old, exists := s.clusters[name]
	s.mu.Unlock()
	if exists && old.secret == sec.ResourceVersion {
		return
	}
	s.remove(name)
	cfg, err := mc.RemoteConfig(sec)
	if err != nil {
		s.log.Error("linked cluster's credentials unusable", "cluster", name, "err", err)
		return
	}
	cfg.UserAgent = "linkerd-destination"
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		s.log.Error("linked cluster's client", "cluster", name, "err", err)
		return
	}
	idx, err := cluster.New(kube, nil)
	if err != nil {
		s.log.Error("linked cluster's index", "cluster", name, "err", err)
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &Cluster{Name: name, TrustDomain: sec.Annotations[mc.AnnTrustDomain], ClusterDomain: sec.Annotations[mc.AnnClusterDomain],
		cancel: cancel, secret: sec.ResourceVersion}
	if c.TrustDomain == "" {
		c.TrustDomain = "cluster.local"
	}
	s.mu.Lock()
	s.clusters[name] = c
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Info("linked cluster added", "cluster", name, "server", cfg.Host)
	go func() {
		// Starting again only waits again: the informers keep running and retrying.
		for {
			err := idx.Start(cctx, s.SyncTimeout)
			if err == nil {
				break
			}
			if cctx.Err() != nil {
				return
			}
			s.log.Warn("linked cluster's caches not synced yet", "cluster", name, "err", err)
		}
		c.index.Store(idx)
		s.mu.Lock()
		s.notifyLocked()
		s.mu.Unlock()
	}()
}
