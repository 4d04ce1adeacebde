package issuer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Watcher keeps a Store loaded from the issuer Secret and the trust-roots ConfigMap.
type Watcher struct {
	Client         kubernetes.Interface
	Namespace      string
	SecretName     string
	TrustRootsName string
	Store          *Store
	Log            *slog.Logger
	// Component names the Events' source.
	Component string

	m        watchMetrics
	secrets  cache.Indexer
	cms      cache.Indexer
	changes  chan struct{}
	lastBad  string
	clockNow func() time.Time
}

type watchMetrics struct {
	expiry    prometheus.Gauge
	rotations prometheus.Counter
	refused   prometheus.Counter
}

// Register adds the watcher's metrics to reg; call it before Start.
func (w *Watcher) Register(reg prometheus.Registerer) error {
	w.m = watchMetrics{
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{Name: "identity_issuer_expiry_timestamp_seconds",
			Help: "When the issuer certificate in use expires (Unix seconds)."}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{Name: "identity_issuer_rotations_total",
			Help: "Issuer credentials replaced without restart."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "identity_issuer_rotations_refused_total",
			Help: "Issuer Secret updates refused because the new issuer is not valid."}),
	}
	for _, c := range []prometheus.Collector{w.m.expiry, w.m.rotations, w.m.refused} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering issuer metrics: %w", err)
		}
	}
	return nil
}

// Start watches the two objects, loads the credentials once and returns; an error means
// no valid issuer could be loaded within timeout, and names the object and the problem.
// Later changes are applied (or refused) in the background until ctx ends.
func (w *Watcher) Start(ctx context.Context, timeout time.Duration) error {
	if w.Log == nil {
		w.Log = slog.Default()
	}
	if w.clockNow == nil {
		w.clockNow = time.Now
	}
	if w.SecretName == "" {
		w.SecretName = DefaultSecretName
	}
	if w.TrustRootsName == "" {
		w.TrustRootsName = DefaultTrustRootsMap
	}
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
		return err
	}
	if _, err := ci.AddEventHandler(notify); err != nil {
		return err
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
	var lastErr error
	for {
		creds, err := w.load()
		if err == nil {
			w.use(ctx, creds, false)
			break
		}
		lastErr = err
		select {
		case <-syncCtx.Done():
			return fmt.Errorf("no valid identity issuer: %w", lastErr)
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
		cur := w.Store.Current()
		switch {
		case err != nil:
			msg := err.Error()
			if msg == w.lastBad {
				continue
			}
			w.lastBad = msg
			w.m.inc(w.m.refused)
			w.Log.Error("refusing new identity issuer; the current one stays in use", "error", err,
				"current_expiry", cur.Expiry())
			w.event(ctx, corev1.EventTypeWarning, "IssuerUpdateRefused",
				"New issuer refused, still using the previous one: "+msg)
		case creds.Authority.Cert.Equal(cur.Authority.Cert) && anchorsEqual(creds, cur):
			w.lastBad = ""
		default:
			w.lastBad = ""
			w.use(ctx, creds, true)
		}
	}
}

func anchorsEqual(a, b *Credentials) bool {
	if len(a.Anchors) != len(b.Anchors) {
		return false
	}
	for i := range a.Anchors {
		if !a.Anchors[i].Equal(b.Anchors[i]) {
			return false
		}
	}
	return true
}

func (m watchMetrics) inc(c prometheus.Counter) {
	if c != nil {
		c.Inc()
	}
}

func (w *Watcher) use(ctx context.Context, c *Credentials, rotated bool) {
	w.Store.Set(c)
	if w.m.expiry != nil {
		w.m.expiry.Set(float64(c.Expiry().Unix()))
	}
	cn := c.Authority.Cert.Subject.CommonName
	if rotated {
		w.m.inc(w.m.rotations)
		w.Log.Info("identity issuer updated", "issuer", cn, "expiry", c.Expiry())
		w.event(ctx, corev1.EventTypeNormal, "IssuerUpdated", fmt.Sprintf("Updated identity issuer %q, valid until %s", cn, c.Expiry().UTC().Format(time.RFC3339)))
	} else {
		w.Log.Info("identity issuer loaded", "issuer", cn, "expiry", c.Expiry())
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
	return Load(sObj.(*corev1.Secret), anchors, w.clockNow())
}

// event records a Kubernetes Event on the issuer Secret; failures are only logged.
func (w *Watcher) event(ctx context.Context, typ, reason, msg string) {
	now := metav1.NewTime(w.clockNow())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: w.SecretName + ".", Namespace: w.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Secret", APIVersion: "v1", Namespace: w.Namespace, Name: w.SecretName},
		Type:           typ, Reason: reason, Message: msg,
		Source:         corev1.EventSource{Component: w.Component},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := w.Client.CoreV1().Events(w.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		w.Log.Warn("recording event failed", "reason", reason, "error", err)
	}
}
