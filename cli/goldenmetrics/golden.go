package goldenmetrics

import (
	"math"
	"time"
)

// Delta returns what the counters grew by from before to after (two scrapes of one
// proxy). When any count went down the proxy restarted in between, and, as Prometheus
// does for a counter reset, after is taken as the growth.
func Delta(before, after Counters) Counters {
	if after.Requests < before.Requests || after.Success < before.Success || after.Failure < before.Failure ||
		after.TLSRequests < before.TLSRequests || after.Latency.Count < before.Latency.Count {
		return after
	}
	d := Counters{
		Requests:    after.Requests - before.Requests,
		TLSRequests: after.TLSRequests - before.TLSRequests,
		Success:     after.Success - before.Success,
		Failure:     after.Failure - before.Failure,
	}
	// Subtracting before is adding its negation bucket by bucket.
	neg := Histogram{Bounds: before.Latency.Bounds, Counts: make([]float64, len(before.Latency.Counts)), Count: -before.Latency.Count}
	for i, n := range before.Latency.Counts {
		neg.Counts[i] = -n
	}
	d.Latency = SumHistograms(after.Latency, neg)
	for i := range d.Latency.Counts {
		d.Latency.Counts[i] = max(d.Latency.Counts[i], 0)
	}
	return d
}

// Add returns the sum of counters, e.g. of every pod of a deployment.
func Add(cs ...Counters) Counters {
	var sum Counters
	hs := make([]Histogram, 0, len(cs))
	for _, c := range cs {
		sum.Requests += c.Requests
		sum.TLSRequests += c.TLSRequests
		sum.Success += c.Success
		sum.Failure += c.Failure
		hs = append(hs, c.Latency)
	}
	sum.Latency = SumHistograms(hs...)
	return sum
}

// Quantile returns the q-quantile (0 <= q <= 1) of the observations in h as PromQL's
// histogram_quantile does: it finds the bucket holding the rank q*Count and interpolates
// linearly within it, taking 0 as the lower bound of the first bucket; a rank in the +Inf
// bucket yields the highest finite bound. It returns NaN for an empty histogram, -Inf
// for q < 0 and +Inf for q > 1.
func Quantile(q float64, h Histogram) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(+1)
	}
	if h.Count <= 0 || len(h.Bounds) == 0 {
		return math.NaN()
	}
	rank := q * h.Count
	b := 0
	for b < len(h.Bounds) && h.Counts[b] < rank {
		b++
	}
	if b == len(h.Bounds) {
		return h.Bounds[len(h.Bounds)-1]
	}
	if b == 0 && h.Bounds[0] <= 0 {
		return h.Bounds[0]
	}
	start, end, count := 0.0, h.Bounds[b], h.Counts[b]
	if b > 0 {
		start = h.Bounds[b-1]
		count -= h.Counts[b-1]
		rank -= h.Counts[b-1]
	}
	if count == 0 {
		return end
	}
	return start + (end-start)*(rank/count)
}

// Golden are the golden metrics of a workload over an interval. Fields that need
// traffic are NaN without any: SuccessRate and the latencies without responses,
// TLSShare without requests.
type Golden struct {
	// Responses is the number of inbound responses in the interval.
	Responses float64
	// SuccessRate is the share of responses classified as successes, 0 to 1.
	SuccessRate float64
	// RPS is responses per second.
	RPS float64
	// P50, P95 and P99 are response latency percentiles in milliseconds.
	P50, P95, P99 float64
	// TLSShare is the share of inbound requests that arrived over mesh TLS, 0 to 1.
	TLSShare float64
}

// Compute returns the golden metrics of the counters' growth d over interval, as `linkerd
// viz stat` computes them from Prometheus: success rate from response classifications,
// responses per second, histogram_quantile latencies and the tls="true" share of
// requests. A non-positive interval yields a NaN RPS.
func Compute(d Counters, interval time.Duration) Golden {
	g := Golden{Responses: d.Success + d.Failure, SuccessRate: math.NaN(), RPS: math.NaN(), TLSShare: math.NaN()}
	if g.Responses > 0 {
		g.SuccessRate = d.Success / g.Responses
	}
	if interval > 0 {
		g.RPS = g.Responses / interval.Seconds()
	}
	if d.Requests > 0 {
		g.TLSShare = d.TLSRequests / d.Requests
	}
	g.P50, g.P95, g.P99 = Quantile(0.5, d.Latency), Quantile(0.95, d.Latency), Quantile(0.99, d.Latency)
	return g
}
