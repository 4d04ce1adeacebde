package certify

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Certify counters and latencies.
type Metrics struct {
	issued   prometheus.Counter
	refused  *prometheus.CounterVec
	duration prometheus.Histogram
	review   prometheus.Histogram
}

// NewMetrics returns unregistered metrics; see Register.
func NewMetrics() *Metrics {
	return &Metrics{
		issued: prometheus.NewCounter(prometheus.CounterOpts{Name: "identity_certificates_issued_total",
			Help: "Workload certificates issued."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "identity_certify_refused_total",
			Help: "Certify requests refused, by reason."}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "identity_certify_duration_seconds",
			Help: "Certify request handling time.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		review: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "identity_tokenreview_duration_seconds",
			Help: "Kubernetes TokenReview latency, including waiting for a review slot.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
}

// Register adds the metrics to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.issued, m.refused, m.duration, m.review} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering identity metrics: %w", err)
		}
	}
	return nil
}

func (m *Metrics) observe(reason string, d time.Duration) {
	m.duration.Observe(d.Seconds())
	if reason == "" {
		m.issued.Inc()
	} else {
		m.refused.WithLabelValues(reason).Inc()
	}
}

// Issued is the counter of certificates issued.
func (m *Metrics) Issued() prometheus.Counter { return m.issued }

// Refused is the counter of requests refused for reason (one of the Reason constants).
func (m *Metrics) Refused(reason string) prometheus.Counter { return m.refused.WithLabelValues(reason) }
