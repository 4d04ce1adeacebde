package issuer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Watcher keeps a Store loaded from the issuer Secret and the trust-roots ConfigMap read
// through the API server (the alternative to mounting them; see FileWatcher). It needs
// get/list/watch on both objects.
type Watcher struct {
	Client         kubernetes.Interface
	Namespace      string
	SecretName     string // DefaultSecretName when empty
	TrustRootsName string // DefaultTrustRootsMap when empty
	Store          *Store
	Log            *slog.Logger
	// Metrics are updated on loads and rotations; unregistered ones are used when nil.
	Metrics *Metrics
	// Events, when set, receives IssuerUpdated and IssuerUpdateRefused Events.
	Events *EventRecorder
	// Now is the clock for validity checks; time.Now when nil.
	Now func() time.Time

	rot     rotator
	secrets cache.Indexer
	cms     cache.Indexer
	changes chan struct{}
}

// Start watches the two objects, loads the credentials once and returns; an error means
// no valid issuer could be loaded within timeout, and names the object and the problem.
// Later changes are applied (or refused) in the background until ctx ends.
func (w *Watcher) Start(ctx context.Context, timeout time.Duration) error {
	if w.SecretName == "" {
		w.SecretName = DefaultSecretName
	}
	if w.TrustRootsName == "" {
		w.TrustRootsName = DefaultTrustRootsMap
	}
	w.rot.init(w.Store, w.Log, w.Metrics, w.Events, w.Now)
	w.changes = make(chan struct{}, 1)
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.poke() },
		UpdateFunc: func(any, any) { w.poke() },
		DeleteFunc: func(any) { w.poke() },
	}
	byName := func(name string) informers.SharedInformerOption {
		return informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		})
	}
	sf := informers.NewSharedInformerFactoryWithOptions(w.Client, 0, informers.WithNamespace(w.Namespace), byName(w.SecretName))
	cf := informers.NewSharedInformerFactoryWithOptions(w.Client, 0, informers.WithNamespace(w.Namespace), byName(w.TrustRootsName))
	si := sf.Core().V1().Secrets().Informer()
	ci := cf.Core().V1().ConfigMaps().Informer()
	if _, err := si.AddEventHandler(notify); err != nil {
		return fmt.Errorf("watching Secret %s/%s: %w", w.Namespace, w.SecretName, err)
	}
	if _, err := ci.AddEventHandler(notify); err != nil {
		return fmt.Errorf("watching ConfigMap %s/%s: %w", w.Namespace, w.TrustRootsName, err)
	}
	w.secrets, w.cms = si.GetIndexer(), ci.GetIndexer()
	sf.Start(ctx.Done())
	cf.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), si.HasSynced, ci.HasSynced) {
		return fmt.Errorf("reading Secret %s/%s and ConfigMap %s/%s from the API server: timed out after %s",
			w.Namespace, w.SecretName, w.Namespace, w.TrustRootsName, timeout)
	}
	for {
		creds, err := w.load()
		if err == nil {
			w.rot.first(creds)
			break
		}
		select {
		case <-syncCtx.Done():
			return fmt.Errorf("no valid identity issuer after %s: %w", timeout, err)
		case <-w.changes:
		}
	}
	go w.loop(ctx)
	return nil
}

func (w *Watcher) poke() {
	select {
	case w.changes <- struct{}{}:
	default:
	}
}

func (w *Watcher) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.changes:
		}
		creds, err := w.load()
		w.rot.apply(ctx, creds, err)
	}
}

func (w *Watcher) load() (*Credentials, error) {
	cmObj, ok, err := w.cms.GetByKey(w.Namespace + "/" + w.TrustRootsName)
	if err != nil || !ok {
		return nil, fmt.Errorf("trust roots ConfigMap %s/%s not found", w.Namespace, w.TrustRootsName)
	}
	anchors, err := ParseAnchors(cmObj.(*corev1.ConfigMap))
	if err != nil {
		return nil, err
	}
	sObj, ok, err := w.secrets.GetByKey(w.Namespace + "/" + w.SecretName)
	if err != nil || !ok {
		return nil, fmt.Errorf("issuer Secret %s/%s not found", w.Namespace, w.SecretName)
	}
	return Load(sObj.(*corev1.Secret), anchors, w.rot.now())
}
