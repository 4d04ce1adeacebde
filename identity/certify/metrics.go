package certify

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Certify counters and latencies.
type Metrics struct {
	issued   prometheus.Counter
	refused  *prometheus.CounterVec
	duration prometheus.Histogram
	review   prometheus.Histogram
	shed     *prometheus.CounterVec
	waiting  prometheus.GaugeFunc
	inFlight prometheus.GaugeFunc
	queue    atomic.Pointer[fairQueue]
}

// NewMetrics returns unregistered metrics; see Register.
func NewMetrics() *Metrics {
	m := &Metrics{
		issued: prometheus.NewCounter(prometheus.CounterOpts{Name: "identity_certificates_issued_total",
			Help: "Workload certificates issued."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "identity_certify_refused_total",
			Help: "Certify requests refused, by reason."}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "identity_certify_duration_seconds",
			Help: "Certify request handling time.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		review: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "identity_tokenreview_duration_seconds",
			Help: "Kubernetes TokenReview latency, including waiting for a review slot.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "identity_tokenreviews_shed_total",
			Help: "Certify calls refused with ResourceExhausted, without a TokenReview, because too many callers were waiting for a review slot, by reason (peer_queue_full, queue_full)."}, []string{"reason"}),
	}
	stat := func(waiting bool) func() float64 {
		return func() float64 {
			q := m.queue.Load()
			if q == nil {
				return 0
			}
			busy, w := q.stats()
			if waiting {
				return float64(w)
			}
			return float64(busy)
		}
	}
	m.waiting = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "identity_tokenreviews_waiting",
		Help: "Certify calls waiting for a TokenReview slot."}, stat(true))
	m.inFlight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "identity_tokenreviews_in_flight",
		Help: "TokenReviews in flight."}, stat(false))
	return m
}

// setQueue makes the gauges report q (the last TokenReviewer built with these metrics).
func (m *Metrics) setQueue(q *fairQueue) { m.queue.Store(q) }

// Register adds the metrics to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.issued, m.refused, m.duration, m.review, m.shed, m.waiting, m.inFlight} {
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

// Shed is the counter of Certify calls refused without a review for reason (one of the
// Shed constants).
func (m *Metrics) Shed(reason string) prometheus.Counter { return m.shed.WithLabelValues(reason) }

// Waiting is the gauge of Certify calls waiting for a TokenReview slot.
func (m *Metrics) Waiting() prometheus.Collector { return m.waiting }

// InFlight is the gauge of TokenReviews in flight.
func (m *Metrics) InFlight() prometheus.Collector { return m.inFlight }
