package k8s

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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
	synced := f.WaitForCacheSync(waitCtx.Done())
	var missing []string
	for k, ok := range synced {
		if !ok {
			missing = append(missing, fmt.Sprint(k))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	if ctx.Err() != nil {
		return fmt.Errorf("stopped before informer caches synced (%s): %w",
			strings.Join(missing, ", "), context.Cause(ctx))
	}
	return fmt.Errorf("informer caches not synced after %s: %s (is the API server reachable, and may this component list and watch them?): %w",
		timeout, strings.Join(missing, ", "), ErrSyncTimeout)
}

// ErrSyncTimeout is wrapped by StartAndSync's error when the timeout expired.
var ErrSyncTimeout = errors.New("cache sync timed out")
