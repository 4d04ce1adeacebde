package k8s

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// NewInformerFactory returns a shared informer factory for client that resyncs every
// resync (zero disables resyncs), optionally limited to one namespace with
// informers.WithNamespace or to some objects with informers.WithTweakListOptions.
func NewInformerFactory(client kubernetes.Interface, resync time.Duration, opts ...informers.SharedInformerOption) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(client, resync, opts...)
}

// Factory is what StartAndSync needs of an informer factory. The typed factory of
// client-go (keyed by reflect.Type), its dynamic factory (keyed by GroupVersionResource)
// and generated CRD factories all satisfy it.
type Factory[K comparable] interface {
	Start(stopCh <-chan struct{})
	WaitForCacheSync(stopCh <-chan struct{}) map[K]bool
}

// StartAndSync starts every informer requested from f so far (request them first, for
// example with f.Core().V1().Pods().Informer()) and waits until their caches hold a full
// list. The informers run until ctx ends. When the caches have not synced within timeout,
// or ctx ends first, it returns an error naming each informer still unsynced and the
// usual causes.
func StartAndSync[K comparable](ctx context.Context, f Factory[K], timeout time.Duration) error {
	f.Start(ctx.Done())
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return syncError(ctx, timeout, unsynced(waitCtx, f))
}

// unsynced waits until f's started informers have synced or ctx ends, and names those
// that have not.
func unsynced[K comparable](ctx context.Context, f Factory[K]) []string {
	var missing []string
	for k, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			missing = append(missing, fmt.Sprint(k))
		}
	}
	return missing
}

// syncError explains why the informers named missing have not synced: ctx ended, or
// timeout expired.
func syncError(ctx context.Context, timeout time.Duration, missing []string) error {
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	if ctx.Err() != nil {
		return fmt.Errorf("stopped before informer caches synced (%s): %w",
			strings.Join(missing, ", "), context.Cause(ctx))
	}
	return fmt.Errorf("informer caches not synced after %s: %s (is the API server reachable, and may this component list and watch them? are the CRDs installed?): %w",
		timeout, strings.Join(missing, ", "), ErrSyncTimeout)
}

// ErrSyncTimeout is wrapped by StartAndSync's error when the timeout expired.
var ErrSyncTimeout = errors.New("cache sync timed out")

// Informers is the set of shared informers a component keeps over one API server: a
// typed factory for built-in kinds and a dynamic one for custom resources, so that every
// part of the component that reads a kind shares one watch of it. Request informers from
// Kube and Dynamic (or with Optional), then Start.
type Informers struct {
	Kube informers.SharedInformerFactory
	// Dynamic is nil when the set was built without a dynamic client.
	Dynamic dynamicinformer.DynamicSharedInformerFactory
	disc    discovery.DiscoveryInterface
}

// NewInformers returns an informer set over kube and dyn (dyn may be nil: then only
// built-in kinds are watched) that never resyncs: answers are recomputed on changes,
// never on a timer.
func NewInformers(kube kubernetes.Interface, dyn dynamic.Interface) *Informers {
	s := &Informers{Kube: NewInformerFactory(kube, 0), disc: kube.Discovery()}
	if dyn != nil {
		s.Dynamic = dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	}
	return s
}

// Served reports whether the API server serves gvr, as its discovery document says: a
// custom resource whose CRD is not installed is not served. The error is that of
// discovery itself.
func (s *Informers) Served(gvr schema.GroupVersionResource) (bool, error) {
	rs, err := s.disc.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("discovering %s: %w", gvr.GroupVersion(), err)
	}
	return rs != nil && slices.ContainsFunc(rs.APIResources, func(r metav1.APIResource) bool { return r.Name == gvr.Resource }), nil
}

// Optional returns the dynamic informer of the first of versions (one kind at several
// versions, preferred first) that the API server serves; ok is false when it serves none
// of them, or the set has no dynamic client. A kind installed later is not picked up:
// the component has to restart.
func (s *Informers) Optional(versions ...schema.GroupVersionResource) (inf informers.GenericInformer, ok bool, err error) {
	if s.Dynamic == nil {
		return nil, false, nil
	}
	for _, v := range versions {
		served, err := s.Served(v)
		if err != nil {
			return nil, false, err
		}
		if served {
			return s.Dynamic.ForResource(v), true, nil
		}
	}
	return nil, false, nil
}

// Start starts every informer requested so far from both factories and waits until
// their caches hold a full list, for at most timeout in all; the error is as
// StartAndSync's. Calling it again after requesting more informers starts and waits for
// those; the others keep running.
func (s *Informers) Start(ctx context.Context, timeout time.Duration) error {
	s.Kube.Start(ctx.Done())
	if s.Dynamic != nil {
		s.Dynamic.Start(ctx.Done())
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	missing := unsynced(waitCtx, s.Kube)
	if s.Dynamic != nil {
		missing = append(missing, unsynced(waitCtx, s.Dynamic)...)
	}
	return syncError(ctx, timeout, missing)
}
