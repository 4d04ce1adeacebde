package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/k8s"
)

// ValuesStore holds the current injection values and swaps in new trust anchors when the
// trust-roots ConfigMap changes; Current is the Handler's Values function.
type ValuesStore struct {
	cur atomic.Pointer[inject.Values]
	Log *slog.Logger
}

// NewValuesStore returns a store holding v (which must be valid).
func NewValuesStore(v inject.Values) *ValuesStore {
	s := &ValuesStore{}
	s.cur.Store(&v)
	return s
}

// Current returns the values in force; callers must not modify them.
func (s *ValuesStore) Current() *inject.Values { return s.cur.Load() }

// SetAnchors replaces the trust anchors. Anchors without a PEM certificate are refused and
// the previous ones stay in force.
func (s *ValuesStore) SetAnchors(pem string) error {
	if !strings.Contains(pem, "-----BEGIN CERTIFICATE-----") {
		return fmt.Errorf("trust anchors: no PEM certificate")
	}
	next := *s.cur.Load()
	if next.IdentityTrustAnchorsPEM == pem {
		return nil
	}
	next.IdentityTrustAnchorsPEM = pem
	if err := next.Validate(); err != nil {
		return err
	}
	s.cur.Store(&next)
	return nil
}

// WatchAnchors keeps the store's trust anchors equal to key of ConfigMap ns/name until ctx
// ends, through an informer on that one ConfigMap. It returns once the informer has synced
// (or ctx ended or timeout passed, with an error). RBAC: list/watch configmaps in ns.
func (s *ValuesStore) WatchAnchors(ctx context.Context, client kubernetes.Interface, ns, name, key string, timeout time.Duration) error {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}))
	inf := factory.Core().V1().ConfigMaps().Informer()
	update := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || cm.Name != name {
			return
		}
		if err := s.SetAnchors(cm.Data[key]); err != nil {
			log.Error("ignoring trust anchors update", "configmap", ns+"/"+name, "err", err)
			return
		}
		log.Info("trust anchors in force", "configmap", ns+"/"+name, "sha256", s.Current().TrustRootSHA256())
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    update,
		UpdateFunc: func(_, obj any) { update(obj) },
	}); err != nil {
		return fmt.Errorf("trust anchors watch: %w", err)
	}
	if err := k8s.StartAndSync(ctx, factory, timeout); err != nil {
		return fmt.Errorf("trust anchors ConfigMap %s/%s: %w", ns, name, err)
	}
	return nil
}
