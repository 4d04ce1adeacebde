package issuer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Event reasons recorded on the issuer Secret.
const (
	// ReasonIssuerUpdated is recorded when a new issuer is taken into use.
	ReasonIssuerUpdated = "IssuerUpdated"
	// ReasonIssuerUpdateRefused is recorded when a changed issuer is not valid and the
	// previous one stays in use.
	ReasonIssuerUpdateRefused = "IssuerUpdateRefused"
)

// Metrics are the issuer gauges and counters.
type Metrics struct {
	expiry    prometheus.Gauge
	rotations prometheus.Counter
	refused   prometheus.Counter
}

// NewMetrics returns unregistered issuer metrics; see Register.
func NewMetrics() *Metrics {
	return &Metrics{
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{Name: "identity_issuer_expiry_timestamp_seconds",
			Help: "When the issuer certificate in use expires (Unix seconds)."}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{Name: "identity_issuer_rotations_total",
			Help: "Issuer credentials replaced without restart."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "identity_issuer_rotations_refused_total",
			Help: "Issuer updates refused because the new issuer is not valid."}),
	}
}

// Register adds the metrics to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.expiry, m.rotations, m.refused} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering issuer metrics: %w", err)
		}
	}
	return nil
}

// EventRecorder records Kubernetes Events about the issuer on the issuer Secret.
type EventRecorder struct {
	Client     kubernetes.Interface
	Namespace  string
	SecretName string
	// Component names the Events' source, e.g. "linkerd-identity".
	Component string
}

// Record creates an Event; a failure is returned for the caller to log, never fatal.
func (r *EventRecorder) Record(ctx context.Context, now time.Time, typ, reason, msg string) error {
	ts := metav1.NewTime(now)
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: r.SecretName + ".", Namespace: r.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Secret", APIVersion: "v1", Namespace: r.Namespace, Name: r.SecretName},
		Type:           typ, Reason: reason, Message: msg,
		Source:         corev1.EventSource{Component: r.Component},
		FirstTimestamp: ts, LastTimestamp: ts, Count: 1,
	}
	if _, err := r.Client.CoreV1().Events(r.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("recording %s event on Secret %s/%s: %w", reason, r.Namespace, r.SecretName, err)
	}
	return nil
}

// rotator applies newly read credentials to a Store: valid ones replace the current
// credentials, invalid ones are refused (once per distinct problem) with a log line, an
// Event and a metric, keeping the current credentials.
type rotator struct {
	store   *Store
	log     *slog.Logger
	metrics *Metrics
	events  *EventRecorder
	now     func() time.Time
	lastBad string
}

func (r *rotator) init(store *Store, log *slog.Logger, m *Metrics, ev *EventRecorder, now func() time.Time) {
	if log == nil {
		log = slog.Default()
	}
	if m == nil {
		m = NewMetrics()
	}
	if now == nil {
		now = time.Now
	}
	*r = rotator{store: store, log: log, metrics: m, events: ev, now: now}
}

// first installs the credentials loaded at start.
func (r *rotator) first(c *Credentials) {
	r.store.Set(c)
	r.metrics.expiry.Set(float64(c.Expiry().Unix()))
	r.log.Info("identity issuer loaded", "issuer", c.Authority.Cert.Subject.CommonName, "expiry", c.Expiry())
}

// apply handles the result of reading changed issuer material.
func (r *rotator) apply(ctx context.Context, c *Credentials, err error) {
	cur := r.store.Current()
	switch {
	case err != nil:
		msg := err.Error()
		if msg == r.lastBad {
			return
		}
		r.lastBad = msg
		r.metrics.refused.Inc()
		r.log.Error("refusing new identity issuer; the current one stays in use", "error", err,
			"current_expiry", cur.Expiry())
		r.event(ctx, corev1.EventTypeWarning, ReasonIssuerUpdateRefused,
			"New identity issuer refused, still using the previous one: "+msg)
	case c.Authority.Cert.Equal(cur.Authority.Cert) && anchorsEqual(c, cur):
		r.lastBad = ""
	default:
		r.lastBad = ""
		r.store.Set(c)
		r.metrics.expiry.Set(float64(c.Expiry().Unix()))
		r.metrics.rotations.Inc()
		cn := c.Authority.Cert.Subject.CommonName
		r.log.Info("identity issuer updated", "issuer", cn, "expiry", c.Expiry())
		r.event(ctx, corev1.EventTypeNormal, ReasonIssuerUpdated,
			fmt.Sprintf("Updated identity issuer %q, valid until %s", cn, c.Expiry().UTC().Format(time.RFC3339)))
	}
}

func (r *rotator) event(ctx context.Context, typ, reason, msg string) {
	if r.events == nil {
		return
	}
	if err := r.events.Record(ctx, r.now(), typ, reason, msg); err != nil {
		r.log.Warn("could not record a Kubernetes event", "error", err)
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
