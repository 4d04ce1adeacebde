// Package goldenmetrics computes a workload's golden metrics (success rate, requests per second,
// latency percentiles and the share of mesh-TLS traffic) from the Prometheus text that
// its Linkerd proxies expose on /metrics, the way `linkerd viz stat` reports them, and
// scrapes that text from meshed pods through the Kubernetes API server.
//
// Only the proxies' inbound HTTP metrics count, as in Linkerd: request_total,
// response_total (classification="success"|"failure") and the response_latency_ms
// histogram with direction="inbound"; TLS is the request_total label tls="true".
package goldenmetrics

import (
	"fmt"
	"io"
	"math"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric and label names of the proxy's exposition (proxy/metrics).
const (
	metricRequests  = "request_total"
	metricResponses = "response_total"
	metricLatency   = "response_latency_ms"
)

// Counters are the cumulative inbound HTTP counters of one or more proxies.
type Counters struct {
	// Requests counts inbound requests; TLSRequests those that arrived over mesh TLS.
	Requests, TLSRequests float64
	// Success and Failure count inbound responses by classification.
	Success, Failure float64
	// Latency is the inbound response latency histogram, in milliseconds, summed over
	// status codes and every other label.
	Latency Histogram
}

// Histogram is a cumulative histogram: Counts[i] observations were at most Bounds[i]
// (ascending, finite), Count observations in all (the +Inf bucket).
type Histogram struct {
	Bounds []float64
	Counts []float64
	Count  float64
}

// Parse reads one Prometheus text exposition of a proxy's /metrics and returns its
// inbound HTTP counters. Metrics other than the three it reads are ignored; malformed
// text, negative or non-finite counts and inconsistent histograms are errors naming the
// problem.
func Parse(r io.Reader) (Counters, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Counters{}, fmt.Errorf("parsing proxy metrics: %w", err)
	}
	var c Counters
	for _, m := range inbound(fams[metricRequests]) {
		v, err := counterValue(metricRequests, m)
		if err != nil {
			return Counters{}, err
		}
		c.Requests += v
		if label(m, "tls") == "true" {
			c.TLSRequests += v
		}
	}
	for _, m := range inbound(fams[metricResponses]) {
		v, err := counterValue(metricResponses, m)
		if err != nil {
			return Counters{}, err
		}
		switch cl := label(m, "classification"); cl {
		case "success":
			c.Success += v
		case "failure":
			c.Failure += v
		default:
			return Counters{}, fmt.Errorf("parsing proxy metrics: %s has classification %q, want success or failure", metricResponses, cl)
		}
	}
	var hs []Histogram
	for _, m := range inbound(fams[metricLatency]) {
		h, err := histogram(m)
		if err != nil {
			return Counters{}, err
		}
		hs = append(hs, h)
	}
	c.Latency = SumHistograms(hs...)
	for _, v := range append([]float64{c.Requests, c.TLSRequests, c.Success, c.Failure, c.Latency.Count}, c.Latency.Counts...) {
		if math.IsInf(v, 0) {
			return Counters{}, fmt.Errorf("parsing proxy metrics: counts add up beyond the float64 range")
		}
	}
	return c, nil
}

// inbound returns the family's metrics labelled direction="inbound".
func inbound(f *dto.MetricFamily) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range f.GetMetric() {
		if label(m, "direction") == "inbound" {
			out = append(out, m)
		}
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func counterValue(name string, m *dto.Metric) (float64, error) {
	var v float64
	switch {
	case m.GetCounter() != nil:
		v = m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		v = m.GetUntyped().GetValue()
	default:
		return 0, fmt.Errorf("parsing proxy metrics: %s is not a counter", name)
	}
	if err := checkCount(name, v); err != nil {
		return 0, err
	}
	return v, nil
}

func checkCount(name string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("parsing proxy metrics: %s has count %v, want a finite number >= 0", name, v)
	}
	return nil
}

func histogram(m *dto.Metric) (Histogram, error) {
	dh := m.GetHistogram()
	if dh == nil {
		return Histogram{}, fmt.Errorf("parsing proxy metrics: %s is not a histogram", metricLatency)
	}
	h := Histogram{Count: float64(dh.GetSampleCount())}
	if dh.SampleCountFloat != nil {
		h.Count = dh.GetSampleCountFloat()
	}
	if err := checkCount(metricLatency+"_count", h.Count); err != nil {
		return Histogram{}, err
	}
	for _, b := range dh.GetBucket() {
		bound := b.GetUpperBound()
		n := float64(b.GetCumulativeCount())
		if b.CumulativeCountFloat != nil {
			n = b.GetCumulativeCountFloat()
		}
		if err := checkCount(metricLatency+"_bucket", n); err != nil {
			return Histogram{}, err
		}
		if math.IsNaN(bound) {
			return Histogram{}, fmt.Errorf("parsing proxy metrics: %s_bucket has le=NaN", metricLatency)
		}
		if math.IsInf(bound, +1) {
			h.Count = n // the +Inf bucket counts every observation, like _count
			continue
		}
		h.Bounds = append(h.Bounds, bound)
		h.Counts = append(h.Counts, n)
	}
	if !slices.IsSorted(h.Bounds) {
		return Histogram{}, fmt.Errorf("parsing proxy metrics: %s buckets are not in ascending order", metricLatency)
	}
	for i := range h.Counts {
		if i > 0 && h.Bounds[i] == h.Bounds[i-1] {
			return Histogram{}, fmt.Errorf("parsing proxy metrics: %s has two buckets le=%v", metricLatency, h.Bounds[i])
		}
		if i > 0 && h.Counts[i] < h.Counts[i-1] || h.Counts[i] > h.Count {
			return Histogram{}, fmt.Errorf("parsing proxy metrics: %s bucket le=%v has count %v, not between the smaller bucket's and the total %v",
				metricLatency, h.Bounds[i], h.Counts[i], h.Count)
		}
	}
	return h, nil
}

// SumHistograms adds histograms bucket by bucket, as PromQL's sum by (le) does: a bound
// missing from one histogram counts that histogram's next larger bucket there.
func SumHistograms(hs ...Histogram) Histogram {
	var bounds []float64
	for _, h := range hs {
		bounds = append(bounds, h.Bounds...)
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	out := Histogram{Bounds: bounds, Counts: make([]float64, len(bounds))}
	for _, h := range hs {
		out.Count += h.Count
		j := 0
		for i, b := range bounds {
			for j < len(h.Bounds) && h.Bounds[j] < b {
				j++
			}
			if j < len(h.Bounds) {
				out.Counts[i] += h.Counts[j]
			} else {
				out.Counts[i] += h.Count
			}
		}
	}
	return out
}
