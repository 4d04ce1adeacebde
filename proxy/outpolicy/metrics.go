package outpolicy

import (
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/l5d-go/l5d/proxy/metrics"
)

// maxHostnames bounds the hostnames a rule keeps apart in its route series; requests
// for further hostnames are recorded with hostname="".
const maxHostnames = 100

// routeMetrics resolves a rule's series in the route families by request hostname.
// Lookups of known hostnames read an immutable map without locks and do not allocate.
type routeMetrics struct {
	reg  *metrics.Registry
	grpc bool
	base string // the parent and route labels

	hosts atomic.Pointer[map[string]*metrics.Requests]
	mu    sync.Mutex // serializes additions to hosts
	other *metrics.Requests
}

// forHost returns the series of requests for host (a Host header or URI authority; its
// port is not part of the hostname label). A nil *routeMetrics (a rule not bound by a
// Watcher) has no series.
func (m *routeMetrics) forHost(host string) *metrics.Requests {
	if m == nil {
		return nil
	}
	host = hostname(host)
	if hs := m.hosts.Load(); hs != nil {
		if q := (*hs)[host]; q != nil {
			return q
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var cur map[string]*metrics.Requests
	if hs := m.hosts.Load(); hs != nil {
		cur = *hs
	}
	if q := cur[host]; q != nil {
		return q
	}
	if len(cur) >= maxHostnames {
		if m.other == nil {
			m.other = m.reg.RouteRequests(m.grpc, metrics.Join(m.base, metrics.Labels("hostname", "")))
		}
		return m.other
	}
	q := m.reg.RouteRequests(m.grpc, metrics.Join(m.base, metrics.Labels("hostname", host)))
	next := maps.Clone(cur)
	if next == nil {
		next = map[string]*metrics.Requests{}
	}
	next[host] = q
	m.hosts.Store(&next)
	return q
}

// hostname is host without its port and trailing dot.
func hostname(host string) string {
	if strings.HasPrefix(host, "[") { // [v6]:port
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[1:i]
		}
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		host = host[:i]
	}
	return strings.TrimSuffix(host, ".")
}

// bindMetrics resolves the series of every rule and backend of p: the route families
// labelled by the parent Service, the route and the hostname; the route-backend and
// balancer families labelled by the parent, the route and the backend.
func (w *Watcher) bindMetrics(p *Policy) {
	if p == nil { // an opaque target: no routes
		return
	}
	reg := w.opts.Metrics
	parent := p.parent.ParentLabels()
	for _, r := range p.rules {
		base := metrics.Join(parent, r.ref.RouteLabels())
		r.metrics = &routeMetrics{reg: reg, grpc: p.grpc, base: base}
		for i := range r.backends {
			b := &r.backends[i]
			b.metrics = reg.BackendRequests(p.grpc, metrics.Join(base, b.ref.BackendLabels()))
			b.gauge = reg.Balancer(p.grpc, metrics.Join(parent, b.ref.BackendLabels()))
		}
	}
}

// releaseGauges releases the balancer gauges of old that p no longer routes to.
func releaseGauges(old, p *Policy) {
	keep := map[*metrics.BalancerGauge]bool{}
	for _, r := range p.Rules() {
		for _, b := range r.backends {
			keep[b.gauge] = true
		}
	}
	for _, r := range old.Rules() {
		for _, b := range r.backends {
			if !keep[b.gauge] {
				b.gauge.Release()
			}
		}
	}
}
