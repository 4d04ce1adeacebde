// Package gatewayprobe probes a linked cluster's multicluster gateway: an HTTP GET of its
// probe path (/ready on port 4191 by default) every period. The gateway is alive after
// one success and down after FailureThreshold consecutive failures; each change is
// reported to OnChange, and every probe to the gateway_alive and
// gateway_probe_latency_ms metrics.
package gatewayprobe

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the prober's metrics, labelled with the target cluster's name.
type Metrics struct {
	Alive   *prometheus.GaugeVec
	Latency *prometheus.HistogramVec
	Probes  *prometheus.CounterVec
}

// NewMetrics registers the probe metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Alive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_alive",
			Help: "1 when the linked cluster's gateway answered its last probes, 0 when it is down.",
		}, []string{"target_cluster_name"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_probe_latency_ms",
			Help:    "Latency of successful probes of the linked cluster's gateway, in milliseconds.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000},
		}, []string{"target_cluster_name"}),
		Probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_probes_total",
			Help: "Probes of the linked cluster's gateway, by result (success or failure).",
		}, []string{"target_cluster_name", "result"}),
	}
	reg.MustRegister(m.Alive, m.Latency, m.Probes)
	return m
}

// Prober probes one gateway. Fill the fields, then call Run.
type Prober struct {
	// Cluster is the target cluster's name (the metrics' label).
	Cluster string
	// URL is what is probed, e.g. http://192.0.2.10:4191/ready; a 2xx answer is a success.
	URL              string
	Period           time.Duration
	Timeout          time.Duration
	FailureThreshold int
	// OnChange, if set, is called (from Run's goroutine) whenever the state changes,
	// including the first success.
	OnChange func(alive bool)
	Metrics  *Metrics
	Log      *slog.Logger
	// Client does the requests; a client without keep-alives when nil, so every probe
	// dials the gateway afresh.
	Client *http.Client

	mu       sync.Mutex
	alive    bool
	latency  time.Duration
	failures int
}

// Alive reports whether the gateway is currently considered alive (false until the
// first success).
func (p *Prober) Alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.alive
}

// Run probes at once and then every Period until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	if p.Client == nil {
		p.Client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	}
	if p.Log == nil {
		p.Log = slog.Default()
	}
	if p.Metrics != nil {
		p.Metrics.Alive.WithLabelValues(p.Cluster).Set(0)
	}
	t := time.NewTicker(p.Period)
	defer t.Stop()
	for {
		p.probeOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Prober) probeOnce(ctx context.Context) {
	start := time.Now()
	err := p.get(ctx)
	if ctx.Err() != nil {
		return
	}
	elapsed := time.Since(start)
	p.mu.Lock()
	was := p.alive
	if err == nil {
		p.failures = 0
		p.alive = true
		p.latency = elapsed
	} else {
		p.failures++
		if p.failures >= p.FailureThreshold {
			p.alive = false
		}
	}
	now := p.alive
	p.mu.Unlock()
	if p.Metrics != nil {
		if err == nil {
			p.Metrics.Latency.WithLabelValues(p.Cluster).Observe(float64(elapsed) / float64(time.Millisecond))
			p.Metrics.Probes.WithLabelValues(p.Cluster, "success").Inc()
		} else {
			p.Metrics.Probes.WithLabelValues(p.Cluster, "failure").Inc()
		}
		v := 0.0
		if now {
			v = 1
		}
		p.Metrics.Alive.WithLabelValues(p.Cluster).Set(v)
	}
	if err != nil {
		p.Log.Debug("gateway probe failed", "cluster", p.Cluster, "url", p.URL, "err", err)
	}
	if now != was {
		p.Log.Info("gateway state changed", "cluster", p.Cluster, "url", p.URL, "alive", now, "err", err)
		if p.OnChange != nil {
			p.OnChange(now)
		}
	}
}

func (p *Prober) get(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return fmt.Errorf("probe request %s: %w", p.URL, err)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return fmt.Errorf("probing %s: %w", p.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probing %s: status %s", p.URL, resp.Status)
	}
	return nil
}
