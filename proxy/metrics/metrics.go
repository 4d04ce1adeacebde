// Package metrics records the proxy's traffic metrics with Linkerd's names and labels and
// writes them in the Prometheus text format.
//
// Recording is lock-free and allocation-free: a label set is resolved once (per
// connection, target, endpoint, or outbound policy route and backend) into an *HTTP,
// *TCP or *Requests handle, and each event is then a few atomic adds on that handle. Only
// exposition takes the registry's lock. policy.go has the outbound policy's families.
package metrics

import (
	"bufio"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LatencyBucketsMs are the upper bounds of response_latency_ms, as in Linkerd.
var LatencyBucketsMs = [...]uint64{1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500,
	1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 40000, 50000}

const nBuckets = len(LatencyBucketsMs) + 1 // plus +Inf

// maxStatus bounds the status codes kept apart; others are recorded as 0.
const maxStatus = 600

// Labels renders label pairs (name, value, name, value, ...) as the inside of a
// Prometheus label set: name="value",... with values escaped. Pairs with an empty value
// are kept (Linkerd exports empty labels such as errno=""). It panics on an odd count,
// a programming error.
func Labels(kv ...string) string {
	if len(kv)%2 != 0 {
		panic("metrics.Labels: odd number of arguments")
	}
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		escape(&b, kv[i+1])
		b.WriteByte('"')
	}
	return b.String()
}

// Join joins rendered label sets, skipping empty ones.
func Join(sets ...string) string {
	var parts []string
	for _, s := range sets {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ",")
}

// DstLabels renders discovery metric labels with the dst_ prefix, sorted by name.
func DstLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if validLabelName(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	kv := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		kv = append(kv, "dst_"+k, m[k])
	}
	return Labels(kv...)
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func escape(b *strings.Builder, v string) {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
}

// DefaultMaxSeries is the default of Registry.MaxSeries.
const DefaultMaxSeries = 1000

// DefaultRetainIdle is the default of Registry.RetainIdle (Linkerd's proxy keeps idle
// metrics for 10 minutes too).
const DefaultRetainIdle = 10 * time.Minute

// OverflowLabels are the labels of the series that takes what a family records beyond
// Registry.MaxSeries.
var OverflowLabels = Labels("overflow", "true")

// Registry holds every label set's handles. The zero value is not usable; use New.
//
// Label cardinality is bounded: each family (HTTP, route, route_actual, TCP, each
// outbound policy family, the balancer gauges, each named counter) keeps at most
// MaxSeries label sets, recording any further one under the family's overflow series
// (OverflowLabels; a balancer gauge beyond the bound is not exported), and an HTTP, TCP
// or policy series that has had no traffic (and, for TCP, no open connection) for
// RetainIdle is dropped at an exposition, as is a balancer gauge once released.
// A handle whose series was dropped stays usable: its next event brings the series back,
// with its counts.
type Registry struct {
	// MaxSeries bounds the label sets of each family (DefaultMaxSeries when zero).
	MaxSeries int
	// RetainIdle is how long an idle series is kept (DefaultRetainIdle when zero).
	RetainIdle time.Duration
	// now is the clock of idleness (time.Now; tests replace it).
	now func() time.Time

	start time.Time

	mu   sync.RWMutex
	http map[string]*HTTP
	// route and routeActual are the per-route families (route_*, route_actual_*).
	route, routeActual map[string]*HTTP
	tcp                map[string]*TCP
	funcs              []funcMetric
	// The outbound policy's route and backend families (see policy.go), and the
	// balancer gauges by family and label set.
	httpRoute, httpBackend, httpRetry *policyFamily
	grpcRoute, grpcBackend, grpcRetry *policyFamily
	balancers                         map[string]*BalancerGauge
	// counters are labelled counters by name, then by rendered label set.
	counters    map[string]map[string]*atomic.Uint64
	counterHelp map[string]string
}

// Counter returns the counter name{labels}, creating it on first use. Callers resolve it
// once per label set and keep it: this takes a lock.
func (r *Registry) Counter(name, help, labels string) *atomic.Uint64 {
	r.mu.RLock()
	c := r.counters[name][labels]
	r.mu.RUnlock()
	if c != nil {
		return c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counters == nil {
		r.counters, r.counterHelp = map[string]map[string]*atomic.Uint64{}, map[string]string{}
	}
	byLabels := r.counters[name]
	if byLabels == nil {
		byLabels = map[string]*atomic.Uint64{}
		r.counters[name], r.counterHelp[name] = byLabels, help
	}
	if c = byLabels[labels]; c == nil {
		if full(byLabels, r.maxSeries()) {
			labels = OverflowLabels
			if c = byLabels[labels]; c != nil {
				return c
			}
		}
		c = new(atomic.Uint64)
		byLabels[labels] = c
	}
	return c
}

// full reports whether a family has max label sets besides its overflow series.
func full[V any](m map[string]V, limit int) bool {
	n := len(m)
	if _, ok := m[OverflowLabels]; ok {
		n--
	}
	return n >= limit
}

func (r *Registry) maxSeries() int {
	if r.MaxSeries > 0 {
		return r.MaxSeries
	}
	return DefaultMaxSeries
}

func (r *Registry) retainIdle() time.Duration {
	if r.RetainIdle > 0 {
		return r.RetainIdle
	}
	return DefaultRetainIdle
}

// funcMetric is a metric whose value is read at exposition time.
type funcMetric struct {
	name, typ, help, labels string
	value                   func() float64
}

// Func registers a metric whose value is computed by value at each exposition: typ is
// "gauge" or "counter", labels a rendered label set (see Labels) or "". It is meant for
// a handful of process-wide values (identity, control-plane state), not per-request ones.
// Metrics of one name must be registered one after another.
func (r *Registry) Func(name, typ, help, labels string, value func() float64) {
	r.mu.Lock()
	r.funcs = append(r.funcs, funcMetric{name: name, typ: typ, help: help, labels: labels, value: value})
	r.mu.Unlock()
}

// New returns an empty registry.
func New() *Registry {
	r := &Registry{start: time.Now(), now: time.Now, http: map[string]*HTTP{}, tcp: map[string]*TCP{},
		route: map[string]*HTTP{}, routeActual: map[string]*HTTP{}, balancers: map[string]*BalancerGauge{}}
	newPolicyFamilies(r)
	return r
}

// HTTP returns the HTTP metrics handle for the rendered label set (see Labels), creating
// it on first use. Callers resolve it once and keep it: this takes a lock.
func (r *Registry) HTTP(labels string) *HTTP { return r.httpIn(r.http, labels) }

// Route returns the handle of a ServiceProfile route's effective traffic (route_request_total,
// route_response_total, route_response_latency_ms: one request and one response per
// request the application sent, whatever the retries), creating it on first use.
func (r *Registry) Route(labels string) *HTTP { return r.httpIn(r.route, labels) }

// RouteActual returns the handle of a route's actual traffic (route_actual_*: every attempt
// sent to an endpoint, retries included), creating it on first use.
func (r *Registry) RouteActual(labels string) *HTTP { return r.httpIn(r.routeActual, labels) }

func (r *Registry) httpIn(m map[string]*HTTP, labels string) *HTTP {
	return lookup(r, m, labels, func(labels string) *HTTP {
		return &HTTP{labels: labels, reg: r, family: m, idleSince: r.now()}
	})
}

// lookup returns the series of labels in the family m, adding mk(labels) on first use;
// once m is full, the family's overflow series (added with mk too) takes its place.
// Known series are found under the read lock.
func lookup[V comparable](r *Registry, m map[string]V, labels string, mk func(labels string) V) V {
	var zero V
	r.mu.RLock()
	v := m[labels]
	r.mu.RUnlock()
	if v != zero {
		return v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if v = m[labels]; v == zero {
		if full(m, r.maxSeries()) {
			labels = OverflowLabels
			if v = m[labels]; v != zero {
				return v
			}
		}
		v = mk(labels)
		m[labels] = v
	}
	return v
}

// reviveHTTP returns the live handle that takes h's events now that h's series was
// dropped: h itself, back in its family, or the family's current series of h's labels
// (h's counts are added to it), or the overflow series when the family is full.
func (r *Registry) reviveHTTP(h *HTTP) *HTTP {
	r.mu.Lock()
	defer r.mu.Unlock()
	for h.dead.Load() && h.fwd != nil {
		h = h.fwd
	}
	if !h.dead.Load() {
		return h
	}
	m := h.family
	cur := m[h.labels]
	if cur == nil && full(m, r.maxSeries()) {
		if cur = m[OverflowLabels]; cur == nil {
			cur = &HTTP{labels: OverflowLabels, reg: r, family: m, idleSince: r.now()}
			m[OverflowLabels] = cur
		}
	}
	if cur == nil {
		m[h.labels] = h
		h.idleSince = r.now()
		h.dead.Store(false)
		return h
	}
	cur.add(h)
	h.fwd = cur
	return cur
}

// add adds o's counts to h.
func (h *HTTP) add(o *HTTP) {
	h.requests.Add(o.requests.Load())
	for code := range o.statuses {
		os := o.statuses[code].Load()
		if os == nil {
			continue
		}
		hs := h.statuses[code].Load()
		if hs == nil {
			hs = new(statusMetrics)
			if !h.statuses[code].CompareAndSwap(nil, hs) {
				hs = h.statuses[code].Load()
			}
		}
		hs.success.Add(os.success.Load())
		hs.failure.Add(os.failure.Load())
		for i := range os.buckets {
			hs.buckets[i].Add(os.buckets[i].Load())
		}
		hs.sumMicros.Add(os.sumMicros.Load())
	}
}

// reviveTCP is reviveHTTP for TCP handles.
func (r *Registry) reviveTCP(t *TCP) *TCP {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t.dead.Load() && t.fwd != nil {
		t = t.fwd
	}
	if !t.dead.Load() {
		return t
	}
	cur := r.tcp[t.labels]
	if cur == nil && full(r.tcp, r.maxSeries()) {
		if cur = r.tcp[OverflowLabels]; cur == nil {
			cur = &TCP{labels: OverflowLabels, reg: r, idleSince: r.now()}
			r.tcp[OverflowLabels] = cur
		}
	}
	if cur == nil {
		r.tcp[t.labels] = t
		t.idleSince = r.now()
		t.dead.Store(false)
		return t
	}
	cur.open.Add(t.open.Load())
	cur.close.Add(t.close.Load())
	cur.read.Add(t.read.Load())
	cur.write.Add(t.write.Load())
	cur.openConnectionsNow.Add(t.openConnectionsNow.Load())
	t.fwd = cur
	return cur
}

// sweep drops the HTTP and TCP series that have been idle for RetainIdle. It holds the
// write lock.
func (r *Registry) sweep() {
	now, retain := r.now(), r.retainIdle()
	for _, m := range []map[string]*HTTP{r.http, r.route, r.routeActual} {
		for labels, h := range m {
			if sig := h.requests.Load(); sig != h.sig {
				h.sig, h.idleSince = sig, now
			} else if now.Sub(h.idleSince) >= retain {
				delete(m, labels)
				h.dead.Store(true)
			}
		}
	}
	for labels, t := range r.tcp {
		if sig := t.open.Load() + t.close.Load() + t.read.Load() + t.write.Load(); sig != t.sig {
			t.sig, t.idleSince = sig, now
		} else if t.openConnectionsNow.Load() <= 0 && now.Sub(t.idleSince) >= retain {
			delete(r.tcp, labels)
			t.dead.Store(true)
		}
	}
	r.sweepPolicy(now, retain)
}

// TCP returns the TCP metrics handle for the rendered label set, creating it on first
// use. Callers resolve it once per connection.
func (r *Registry) TCP(labels string) *TCP {
	return lookup(r, r.tcp, labels, func(labels string) *TCP {
		return &TCP{labels: labels, reg: r, idleSince: r.now()}
	})
}

// HTTP is the request metrics of one label set (direction, authority, target, tls,
// dst_* ...). Its methods are safe for concurrent use and do not allocate after the
// first response of each status code.
type HTTP struct {
	labels   string
	requests atomic.Uint64
	statuses [maxStatus]atomic.Pointer[statusMetrics]

	// dead is set once the registry dropped the series (see Registry); the next event
	// revives it.
	dead   atomic.Bool
	reg    *Registry
	family map[string]*HTTP
	// Guarded by reg.mu: fwd is the handle that took over a dropped series; sig and
	// idleSince are the activity the last sweep saw and since when it has not changed.
	fwd       *HTTP
	sig       uint64
	idleSince time.Time
}

// live returns the handle that records h's events: h, unless its series was dropped.
func (h *HTTP) live() *HTTP {
	if !h.dead.Load() {
		return h
	}
	return h.reg.reviveHTTP(h)
}

type statusMetrics struct {
	success, failure atomic.Uint64
	buckets          [nBuckets]atomic.Uint64
	sumMicros        atomic.Uint64
}

// Request counts one request (request_total).
func (h *HTTP) Request() { h.live().requests.Add(1) }

// Response records one response: its status code, whether it is a failure (5xx, a gRPC
// error status or a stream error), and the latency from request headers to the end of
// the response stream.
func (h *HTTP) Response(status int, failure bool, latency time.Duration) {
	if status < 0 || status >= maxStatus {
		status = 0
	}
	h = h.live()
	s := h.statuses[status].Load()
	if s == nil {
		s = new(statusMetrics)
		if !h.statuses[status].CompareAndSwap(nil, s) {
			s = h.statuses[status].Load()
		}
	}
	if failure {
		s.failure.Add(1)
	} else {
		s.success.Add(1)
	}
	us := uint64(max(latency, 0) / time.Microsecond)
	ms := us / 1000
	if us%1000 != 0 {
		ms++ // bucket bounds are inclusive: 1.2ms falls in le="2"
	}
	i := 0
	for i < len(LatencyBucketsMs) && ms > LatencyBucketsMs[i] {
		i++
	}
	s.buckets[i].Add(1)
	s.sumMicros.Add(us)
}

// TCP is the connection metrics of one label set. Its methods are safe for concurrent use.
type TCP struct {
	labels             string
	open, close        atomic.Uint64
	read, write        atomic.Uint64
	openConnectionsNow atomic.Int64

	// As in HTTP.
	dead      atomic.Bool
	reg       *Registry
	fwd       *TCP
	sig       uint64
	idleSince time.Time
}

// live returns the handle that records t's events: t, unless its series was dropped.
func (t *TCP) live() *TCP {
	if !t.dead.Load() {
		return t
	}
	return t.reg.reviveTCP(t)
}

// Open counts an accepted or established connection.
func (t *TCP) Open() { t = t.live(); t.open.Add(1); t.openConnectionsNow.Add(1) }

// Close counts a closed connection.
func (t *TCP) Close() { t = t.live(); t.close.Add(1); t.openConnectionsNow.Add(-1) }

// Read adds n bytes read from the peer.
func (t *TCP) Read(n int) { t.live().read.Add(uint64(n)) }

// Wrote adds n bytes written to the peer.
func (t *TCP) Wrote(n int) { t.live().write.Add(uint64(n)) }

// WriteTo writes every metric in the Prometheus text exposition format (version 0.0.4).
// Series idle for RetainIdle are dropped first.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	r.sweep()
	r.mu.Unlock()
	r.mu.RLock()
	https := make([]*HTTP, 0, len(r.http))
	for _, h := range r.http {
		https = append(https, h)
	}
	routes := slices.Collect(maps.Values(r.route))
	actuals := slices.Collect(maps.Values(r.routeActual))
	tcps := make([]*TCP, 0, len(r.tcp))
	for _, t := range r.tcp {
		tcps = append(tcps, t)
	}
	funcs := r.funcs
	type counterSample struct {
		labels string
		v      uint64
	}
	counterNames := make([]string, 0, len(r.counters))
	counterSamples := map[string][]counterSample{}
	for name, byLabels := range r.counters {
		counterNames = append(counterNames, name)
		for l, c := range byLabels {
			counterSamples[name] = append(counterSamples[name], counterSample{l, c.Load()})
		}
	}
	counterHelp := maps.Clone(r.counterHelp)
	pfams := r.policyFamilies()
	pseries := make([][]*Requests, len(pfams))
	for i, f := range pfams {
		pseries[i] = slices.Collect(maps.Values(f.m))
		slices.SortFunc(pseries[i], func(a, b *Requests) int { return strings.Compare(a.labels, b.labels) })
	}
	gauges := slices.Collect(maps.Values(r.balancers))
	r.mu.RUnlock()
	slices.SortFunc(gauges, func(a, b *BalancerGauge) int { return strings.Compare(a.labels, b.labels) })
	slices.Sort(counterNames)
	for _, hs := range [][]*HTTP{https, routes, actuals} {
		slices.SortFunc(hs, func(a, b *HTTP) int { return strings.Compare(a.labels, b.labels) })
	}
	slices.SortFunc(tcps, func(a, b *TCP) int { return strings.Compare(a.labels, b.labels) })

	cw := &countingWriter{w: w}
	e := expo{w: bufio.NewWriterSize(cw, 32<<10)}

	writeHTTP(&e, "", https)
	writeHTTP(&e, "route_", routes)
	writeHTTP(&e, "route_actual_", actuals)
	writePolicy(&e, pfams, pseries)
	writeBalancers(&e, gauges)

	e.header("tcp_open_total", "counter", "Total count of opened connections")
	for _, t := range tcps {
		e.sample("tcp_open_total", t.labels, "", t.open.Load())
	}
	e.header("tcp_close_total", "counter", "Total count of closed connections")
	for _, t := range tcps {
		e.sample("tcp_close_total", t.labels, `errno=""`, t.close.Load())
	}
	e.header("tcp_open_connections", "gauge", "Number of currently-open connections")
	for _, t := range tcps {
		e.sample("tcp_open_connections", t.labels, "", uint64(max(t.openConnectionsNow.Load(), 0)))
	}
	e.header("tcp_read_bytes_total", "counter", "Total count of bytes read from peers")
	for _, t := range tcps {
		e.sample("tcp_read_bytes_total", t.labels, "", t.read.Load())
	}
	e.header("tcp_write_bytes_total", "counter", "Total count of bytes written to peers")
	for _, t := range tcps {
		e.sample("tcp_write_bytes_total", t.labels, "", t.write.Load())
	}
	for i, f := range funcs {
		if i == 0 || funcs[i-1].name != f.name {
			e.header(f.name, f.typ, f.help)
		}
		e.sampleFloat(f.name, f.labels, "", f.value())
	}
	for _, name := range counterNames {
		e.header(name, "counter", counterHelp[name])
		samples := counterSamples[name]
		slices.SortFunc(samples, func(a, b counterSample) int { return strings.Compare(a.labels, b.labels) })
		for _, c := range samples {
			e.sample(name, c.labels, "", c.v)
		}
	}
	writeProcess(&e, r.start)
	err := e.w.Flush()
	return cw.n, err
}

// writeHTTP writes the request, response and latency families of hs, their names
// prefixed with prefix. A family with no series is left out when prefixed.
func writeHTTP(e *expo, prefix string, hs []*HTTP) {
	if prefix != "" && len(hs) == 0 {
		return
	}
	e.header(prefix+"request_total", "counter", "Total count of HTTP requests.")
	for _, h := range hs {
		e.sample(prefix+"request_total", h.labels, "", h.requests.Load())
	}
	e.header(prefix+"response_total", "counter", "Total count of HTTP responses.")
	for _, h := range hs {
		for code := range h.statuses {
			s := h.statuses[code].Load()
			if s == nil {
				continue
			}
			sl := `status_code="` + strconv.Itoa(code) + `"`
			if v := s.success.Load(); v > 0 {
				e.sample(prefix+"response_total", h.labels, sl+`,classification="success"`, v)
			}
			if v := s.failure.Load(); v > 0 {
				e.sample(prefix+"response_total", h.labels, sl+`,classification="failure"`, v)
			}
		}
	}
	e.header(prefix+"response_latency_ms", "histogram",
		"Elapsed times between a request's headers being received and its response stream completing")
	for _, h := range hs {
		for code := range h.statuses {
			s := h.statuses[code].Load()
			if s == nil {
				continue
			}
			sl := `status_code="` + strconv.Itoa(code) + `"`
			var cum uint64
			for i := range nBuckets {
				cum += s.buckets[i].Load()
				le := "+Inf"
				if i < len(LatencyBucketsMs) {
					le = strconv.FormatUint(LatencyBucketsMs[i], 10)
				}
				e.sample(prefix+"response_latency_ms_bucket", h.labels, sl+`,le="`+le+`"`, cum)
			}
			e.sampleFloat(prefix+"response_latency_ms_sum", h.labels, sl, float64(s.sumMicros.Load())/1000)
			e.sample(prefix+"response_latency_ms_count", h.labels, sl, cum)
		}
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// expo writes exposition lines into a buffered writer; write errors surface at Flush.
type expo struct {
	w   *bufio.Writer
	num []byte
}

func (e *expo) header(name, typ, help string) {
	e.w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

func (e *expo) labels(name, base, extra string) {
	e.w.WriteString(name)
	if base == "" && extra == "" {
		return
	}
	e.w.WriteByte('{')
	e.w.WriteString(base)
	if base != "" && extra != "" {
		e.w.WriteByte(',')
	}
	e.w.WriteString(extra)
	e.w.WriteByte('}')
}

func (e *expo) sample(name, base, extra string, v uint64) {
	e.labels(name, base, extra)
	e.w.WriteByte(' ')
	e.num = strconv.AppendUint(e.num[:0], v, 10)
	e.w.Write(e.num)
	e.w.WriteByte('\n')
}

func (e *expo) sampleFloat(name, base, extra string, v float64) {
	e.labels(name, base, extra)
	e.w.WriteByte(' ')
	e.num = strconv.AppendFloat(e.num[:0], v, 'g', -1, 64)
	e.w.Write(e.num)
	e.w.WriteByte('\n')
}
