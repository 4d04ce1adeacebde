package webhook

import "github.com/prometheus/client_golang/prometheus"

// Result label values of Metrics.Responses.
const (
	ResultInjected = "injected"
	ResultSkipped  = "skipped"
	ResultRefused  = "refused"
	ResultError    = "error"
)

// Metrics counts admission traffic. Responses carries result (injected, skipped, refused,
// error) and reason (an inject.Reason, "annotation" or a decode/lookup cause).
type Metrics struct {
	Requests    prometheus.Counter
	Responses   *prometheus.CounterVec
	BadRequests prometheus.Counter
	Latency     prometheus.Histogram
}

// NewMetrics builds the webhook's metrics; register them with Register.
func NewMetrics() *Metrics {
	return &Metrics{
		Requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "proxy_inject_admission_requests_total", Help: "AdmissionReviews received.",
		}),
		Responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_inject_admission_responses_total", Help: "AdmissionReviews answered, by result and reason.",
		}, []string{"result", "reason"}),
		BadRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "proxy_inject_admission_bad_requests_total", Help: "Request bodies that were not valid AdmissionReviews (HTTP 400).",
		}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "proxy_inject_admission_duration_seconds", Help: "Time to answer an AdmissionReview.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}),
	}
}

// Register adds the metrics to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Requests, m.Responses, m.BadRequests, m.Latency} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
