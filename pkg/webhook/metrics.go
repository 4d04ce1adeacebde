package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts one webhook's admission traffic. The Handler counts Requests, BadRequests
// and Latency; Responses (by result and reason) is counted by the Review function, which
// knows why it answered as it did.
type Metrics struct {
	Requests    prometheus.Counter
	Responses   *prometheus.CounterVec
	BadRequests prometheus.Counter
	Latency     prometheus.Histogram
}

// NewMetrics builds a webhook's metrics named <prefix>_admission_requests_total,
// <prefix>_admission_responses_total{result,reason}, <prefix>_admission_bad_requests_total
// and <prefix>_admission_duration_seconds; register them with Register.
func NewMetrics(prefix string) *Metrics {
	name := func(s string) string { return prefix + "_admission_" + s }
	return &Metrics{
		Requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("requests_total"), Help: "AdmissionReviews received.",
		}),
		Responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("responses_total"), Help: "AdmissionReviews answered, by result and reason.",
		}, []string{"result", "reason"}),
		BadRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("bad_requests_total"), Help: "Request bodies that were not valid AdmissionReviews (HTTP 400).",
		}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: name("duration_seconds"), Help: "Time to answer an AdmissionReview.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}),
	}
}

// Register adds the metrics to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Requests, m.Responses, m.BadRequests, m.Latency} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering webhook metrics: %w", err)
		}
	}
	return nil
}
