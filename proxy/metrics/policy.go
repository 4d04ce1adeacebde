package metrics

import (
	"strconv"
	"sync/atomic"
	"time"
)

// This file holds the families Linkerd's proxy exports for the routes and backends of
// the outbound policy (Gateway API HTTPRoute/GRPCRoute and the policy controller's
// default routes), with Linkerd's names and labels:
//
//	outbound_{http,grpc}_route_request_duration_seconds        histogram  parent_*, route_*, hostname
//	outbound_{http,grpc}_route_request_statuses_total          counter    parent_*, route_*, hostname, http_status|grpc_status, error
//	outbound_{http,grpc}_route_backend_requests_total          counter    parent_*, route_*, backend_*
//	outbound_{http,grpc}_route_backend_response_duration_seconds histogram parent_*, route_*, backend_*
//	outbound_{http,grpc}_route_backend_response_statuses_total counter    parent_*, route_*, backend_*, http_status|grpc_status, error
//	outbound_{http,grpc}_route_retry_requests_total            counter    parent_*, route_*
//	outbound_{http,grpc}_balancer_endpoints                    gauge      parent_*, backend_*, endpoint_state (ready|pending)
//
// The route families count requests as the application sees them (one per request,
// whatever the retries); the backend families count every attempt sent to a backend.
// proxy/README.md lists them with the families deliberately left out.

// Ref names a Kubernetes resource in the parent_*, route_* and backend_* labels: a
// parent Service, a route (kind "default" for the policy controller's generated routes),
// or a backend Service. Port 0 is rendered as an empty label.
type Ref struct {
	Group, Kind, Namespace, Name, Section string
	Port                                  uint32
}

func (r Ref) port() string {
	if r.Port == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(r.Port), 10)
}

// ParentLabels renders r as parent_group, parent_kind, parent_namespace, parent_name,
// parent_port and parent_section_name.
func (r Ref) ParentLabels() string {
	return Labels("parent_group", r.Group, "parent_kind", r.Kind, "parent_namespace", r.Namespace,
		"parent_name", r.Name, "parent_port", r.port(), "parent_section_name", r.Section)
}

// RouteLabels renders r as route_group, route_kind, route_namespace and route_name.
func (r Ref) RouteLabels() string {
	return Labels("route_group", r.Group, "route_kind", r.Kind, "route_namespace", r.Namespace, "route_name", r.Name)
}

// BackendLabels renders r as backend_group, backend_kind, backend_namespace,
// backend_name, backend_port and backend_section_name.
func (r Ref) BackendLabels() string {
	return Labels("backend_group", r.Group, "backend_kind", r.Kind, "backend_namespace", r.Namespace,
		"backend_name", r.Name, "backend_port", r.port(), "backend_section_name", r.Section)
}

// ErrorKind is the error label of a request that ended without a response (or whose
// response stream broke): Linkerd's FAIL_FAST, LOAD_SHED, ... ErrNone is a request that
// ended normally (error="").
type ErrorKind uint8

// The error kinds, as Linkerd's proxy labels them.
const (
	ErrNone ErrorKind = iota
	ErrFailFast
	ErrLoadShed
	ErrRequestTimeout
	ErrResponseHeadersTimeout
	ErrCancel
	ErrIO
	ErrUnknown
	nErrorKinds
)

var errorNames = [nErrorKinds]string{"", "FAIL_FAST", "LOAD_SHED", "REQUEST_TIMEOUT", "RESPONSE_HEADERS_TIMEOUT", "CANCEL", "IO", "UNKNOWN"}

// String returns the error label value.
func (e ErrorKind) String() string {
	if e >= nErrorKinds {
		return errorNames[ErrUnknown]
	}
	return errorNames[e]
}

// grpcCodeNames are the grpc_status label values of codes 0..16.
var grpcCodeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// GRPCUnknown is the gRPC status recorded for a response without a grpc-status.
const GRPCUnknown = 2

// ParseGRPCStatus returns the code of a grpc-status value: GRPCUnknown for "" and for
// anything but a code 0..16. It does not allocate.
func ParseGRPCStatus(v string) int {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < len(grpcCodeNames) {
		return n
	}
	return GRPCUnknown
}

// Bucket bounds, in seconds, as Linkerd has them: coarse for route request durations,
// finer for backend response durations.
var (
	RouteRequestBuckets    = []float64{0.05, 0.5, 1, 10}
	BackendResponseBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 10}
)

// maxPolicyBuckets bounds the bucket count of the policy families' histograms.
const maxPolicyBuckets = 8

// familyKind says which metrics a policy family's series hold.
type familyKind uint8

const (
	routeFamily   familyKind = iota // request durations and statuses
	backendFamily                   // requests, response durations and statuses
	retryFamily                     // retries only
)

// policyFamily is one family group of the outbound policy: its series by rendered label
// set, bounded and swept like the other families.
type policyFamily struct {
	prefix  string // "outbound_http_route" or "outbound_grpc_route"
	kind    familyKind
	grpc    bool
	buckets []time.Duration
	m       map[string]*Requests
}

// Requests is one series of a route or backend family. Its methods are safe for
// concurrent use and do not allocate, except on the first response of each error kind.
type Requests struct {
	labels string
	fam    *policyFamily

	requests atomic.Uint64
	buckets  [maxPolicyBuckets + 1]atomic.Uint64
	sumNanos atomic.Uint64
	// byErr holds the response counts by error kind, then by status (the HTTP status, 0
	// for none, or the gRPC code).
	byErr [nErrorKinds]atomic.Pointer[[maxStatus]atomic.Uint64]

	// As in HTTP: dropped series revive at their next event.
	dead      atomic.Bool
	reg       *Registry
	fwd       *Requests
	sig       uint64
	idleSince time.Time
}

// GRPC reports whether the series' statuses are gRPC codes.
func (q *Requests) GRPC() bool { return q != nil && q.fam.grpc }

func (q *Requests) live() *Requests {
	if !q.dead.Load() {
		return q
	}
	return q.reg.reviveRequests(q)
}

// Request counts one request sent to a backend (route_backend_requests_total). A nil
// handle records nothing.
func (q *Requests) Request() {
	if q == nil {
		return
	}
	q.live().requests.Add(1)
}

// Done records the end of a request: status is the HTTP status (0 when there was no
// response) or, for a gRPC family, the gRPC code; err says why the request failed without
// a response or with a broken one; d is its duration. A nil handle records nothing.
func (q *Requests) Done(status int, err ErrorKind, d time.Duration) {
	if q == nil {
		return
	}
	q = q.live()
	if status < 0 || status >= maxStatus {
		status = 0
	}
	if err >= nErrorKinds {
		err = ErrUnknown
	}
	c := q.byErr[err].Load()
	if c == nil {
		c = new([maxStatus]atomic.Uint64)
		if !q.byErr[err].CompareAndSwap(nil, c) {
			c = q.byErr[err].Load()
		}
	}
	c[status].Add(1)
	d = max(d, 0)
	bs := q.fam.buckets
	i := 0
	for i < len(bs) && d > bs[i] {
		i++
	}
	q.buckets[i].Add(1)
	q.sumNanos.Add(uint64(d))
}

// activity is a number that changes whenever the series records something.
func (q *Requests) activity() uint64 {
	n := q.requests.Load()
	for i := range q.buckets {
		n += q.buckets[i].Load()
	}
	return n
}

// add adds o's counts to q.
func (q *Requests) add(o *Requests) {
	q.requests.Add(o.requests.Load())
	for i := range o.buckets {
		q.buckets[i].Add(o.buckets[i].Load())
	}
	q.sumNanos.Add(o.sumNanos.Load())
	for e := range o.byErr {
		oc := o.byErr[e].Load()
		if oc == nil {
			continue
		}
		qc := q.byErr[e].Load()
		if qc == nil {
			qc = new([maxStatus]atomic.Uint64)
			if !q.byErr[e].CompareAndSwap(nil, qc) {
				qc = q.byErr[e].Load()
			}
		}
		for s := range oc {
			if v := oc[s].Load(); v > 0 {
				qc[s].Add(v)
			}
		}
	}
}

// policyFamilies are the family groups in exposition order.
func (r *Registry) policyFamilies() []*policyFamily {
	return []*policyFamily{r.httpRoute, r.httpBackend, r.httpRetry, r.grpcRoute, r.grpcBackend, r.grpcRetry}
}

func newPolicyFamilies(r *Registry) {
	secs := func(bs []float64) []time.Duration {
		out := make([]time.Duration, len(bs))
		for i, b := range bs {
			out[i] = time.Duration(b * float64(time.Second))
		}
		return out
	}
	mk := func(prefix string, kind familyKind, grpc bool, bs []float64) *policyFamily {
		return &policyFamily{prefix: prefix, kind: kind, grpc: grpc, buckets: secs(bs), m: map[string]*Requests{}}
	}
	r.httpRoute = mk("outbound_http_route", routeFamily, false, RouteRequestBuckets)
	r.httpBackend = mk("outbound_http_route", backendFamily, false, BackendResponseBuckets)
	r.httpRetry = mk("outbound_http_route", retryFamily, false, nil)
	r.grpcRoute = mk("outbound_grpc_route", routeFamily, true, RouteRequestBuckets)
	r.grpcBackend = mk("outbound_grpc_route", backendFamily, true, BackendResponseBuckets)
	r.grpcRetry = mk("outbound_grpc_route", retryFamily, true, nil)
}

// RouteRequests returns the series of a route's requests in
// outbound_{http,grpc}_route_request_{duration_seconds,statuses_total}; labels are the
// parent, route and hostname labels. Callers resolve it when a route is built (or per
// hostname), not per request: this takes a lock.
func (r *Registry) RouteRequests(grpc bool, labels string) *Requests {
	if grpc {
		return r.requestsIn(r.grpcRoute, labels)
	}
	return r.requestsIn(r.httpRoute, labels)
}

// BackendRequests returns the series of a route backend in
// outbound_{http,grpc}_route_backend_{requests_total,response_duration_seconds,
// response_statuses_total}; labels are the parent, route and backend labels.
func (r *Registry) BackendRequests(grpc bool, labels string) *Requests {
	if grpc {
		return r.requestsIn(r.grpcBackend, labels)
	}
	return r.requestsIn(r.httpBackend, labels)
}

// RouteRetries returns the series of a route's retries in
// outbound_{http,grpc}_route_retry_requests_total (count them with Request); labels are
// the parent and route labels.
func (r *Registry) RouteRetries(grpc bool, labels string) *Requests {
	if grpc {
		return r.requestsIn(r.grpcRetry, labels)
	}
	return r.requestsIn(r.httpRetry, labels)
}

func (r *Registry) requestsIn(f *policyFamily, labels string) *Requests {
	return lookup(r, f.m, labels, func(labels string) *Requests {
		return &Requests{labels: labels, fam: f, reg: r, idleSince: r.now()}
	})
}

// reviveRequests is reviveHTTP for policy series.
func (r *Registry) reviveRequests(q *Requests) *Requests {
	r.mu.Lock()
	defer r.mu.Unlock()
	for q.dead.Load() && q.fwd != nil {
		q = q.fwd
	}
	if !q.dead.Load() {
		return q
	}
	m := q.fam.m
	cur := m[q.labels]
	if cur == nil && full(m, r.maxSeries()) {
		if cur = m[OverflowLabels]; cur == nil {
			cur = &Requests{labels: OverflowLabels, fam: q.fam, reg: r, idleSince: r.now()}
			m[OverflowLabels] = cur
		}
	}
	if cur == nil {
		m[q.labels] = q
		q.idleSince = r.now()
		q.dead.Store(false)
		return q
	}
	cur.add(q)
	q.fwd = cur
	return cur
}

// sweepPolicy drops the policy series idle for RetainIdle. It holds the write lock.
func (r *Registry) sweepPolicy(now time.Time, retain time.Duration) {
	for _, f := range r.policyFamilies() {
		for labels, q := range f.m {
			if sig := q.activity(); sig != q.sig {
				q.sig, q.idleSince = sig, now
			} else if now.Sub(q.idleSince) >= retain {
				delete(f.m, labels)
				q.dead.Store(true)
			}
		}
	}
	for labels, g := range r.balancers {
		if g.owner.Load() == nil {
			delete(r.balancers, labels)
		}
	}
}

// EndpointCounter reports a balancer's endpoints: those ready for requests and those
// pending (not yet usable, or out of rotation after failures).
type EndpointCounter interface {
	EndpointStates() (ready, pending int)
}

// BalancerGauge is one series of outbound_{http,grpc}_balancer_endpoints: the endpoint
// states of the balancer a backend resolved to.
type BalancerGauge struct {
	labels string
	grpc   bool
	// owner is the balancer read at exposition; nil until the backend is resolved,
	// and once released.
	owner atomic.Pointer[EndpointCounter]
}

// Balancer returns the gauge of a backend's balancer; labels are the parent and backend
// labels. Callers bind it to the balancer with Set once the backend resolves, and
// Release it when the backend is no longer routed to.
func (r *Registry) Balancer(grpc bool, labels string) *BalancerGauge {
	key := "http/" + labels
	if grpc {
		key = "grpc/" + labels
	}
	r.mu.RLock()
	g := r.balancers[key]
	r.mu.RUnlock()
	if g != nil {
		return g
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if g = r.balancers[key]; g == nil {
		if full(r.balancers, r.maxSeries()) {
			return &BalancerGauge{labels: labels, grpc: grpc} // not exported
		}
		g = &BalancerGauge{labels: labels, grpc: grpc}
		r.balancers[key] = g
	}
	return g
}

// Set binds the gauge to the balancer it reports; it does nothing when b is already
// bound. A nil gauge is ignored.
func (g *BalancerGauge) Set(b EndpointCounter) {
	if g == nil {
		return
	}
	if cur := g.owner.Load(); cur != nil && *cur == b {
		return
	}
	nb := b // only a change takes an allocation
	g.owner.Store(&nb)
}

// Release unbinds the gauge; its series is dropped at the next exposition.
func (g *BalancerGauge) Release() {
	if g != nil {
		g.owner.Store(nil)
	}
}

// writePolicy writes the policy families.
func writePolicy(e *expo, fams []*policyFamily, series [][]*Requests) {
	for i, f := range fams {
		qs := series[i]
		if len(qs) == 0 {
			continue
		}
		statusLabel := "http_status"
		if f.grpc {
			statusLabel = "grpc_status"
		}
		switch f.kind {
		case routeFamily:
			writeDurations(e, f, f.prefix+"_request_duration_seconds",
				"The time between request initialization and response completion.", qs)
			writeStatuses(e, f, f.prefix+"_request_statuses_total", statusLabel,
				"Completed request-response streams, by status and error.", qs)
		case backendFamily:
			writeRequests(e, f.prefix+"_backend_requests_total", "The total number of requests dispatched to route backends.", qs)
			writeDurations(e, f, f.prefix+"_backend_response_duration_seconds",
				"The time between request dispatch to a backend and the response's completion.", qs)
			writeStatuses(e, f, f.prefix+"_backend_response_statuses_total", statusLabel,
				"Completed responses from route backends, by status and error.", qs)
		case retryFamily:
			writeRequests(e, f.prefix+"_retry_requests_total", "The total number of retries sent on routes.", qs)
		}
	}
}

// writeRequests writes the request counts of qs as the counter name.
func writeRequests(e *expo, name, help string, qs []*Requests) {
	e.header(name, "counter", help)
	for _, q := range qs {
		e.sample(name, q.labels, "", q.requests.Load())
	}
}

func writeDurations(e *expo, f *policyFamily, name, help string, qs []*Requests) {
	e.header(name, "histogram", help)
	for _, q := range qs {
		var cum uint64
		for i := 0; i <= len(f.buckets); i++ {
			cum += q.buckets[i].Load()
			le := "+Inf"
			if i < len(f.buckets) {
				le = strconv.FormatFloat(f.buckets[i].Seconds(), 'g', -1, 64)
			}
			e.sample(name+"_bucket", q.labels, `le="`+le+`"`, cum)
		}
		e.sampleFloat(name+"_sum", q.labels, "", float64(q.sumNanos.Load())/1e9)
		e.sample(name+"_count", q.labels, "", cum)
	}
}

func writeStatuses(e *expo, f *policyFamily, name, statusLabel, help string, qs []*Requests) {
	e.header(name, "counter", help)
	for _, q := range qs {
		for k := range q.byErr {
			c := q.byErr[k].Load()
			if c == nil {
				continue
			}
			errLabel := `,error="` + ErrorKind(k).String() + `"`
			for s := range c {
				v := c[s].Load()
				if v == 0 {
					continue
				}
				var st string
				switch {
				case f.grpc && s < len(grpcCodeNames):
					st = grpcCodeNames[s]
				case f.grpc:
					st = grpcCodeNames[GRPCUnknown]
				case s != 0:
					st = strconv.Itoa(s)
				}
				e.sample(name, q.labels, statusLabel+`="`+st+`"`+errLabel, v)
			}
		}
	}
}

// writeBalancers writes outbound_{http,grpc}_balancer_endpoints.
func writeBalancers(e *expo, gs []*BalancerGauge) {
	for _, grpc := range []bool{false, true} {
		name := "outbound_http_balancer_endpoints"
		if grpc {
			name = "outbound_grpc_balancer_endpoints"
		}
		headed := false
		for _, g := range gs {
			b := g.owner.Load()
			if g.grpc != grpc || b == nil {
				continue
			}
			if !headed {
				e.header(name, "gauge", "The number of endpoints of route backends' balancers, by state.")
				headed = true
			}
			ready, pending := (*b).EndpointStates()
			e.sample(name, g.labels, `endpoint_state="ready"`, uint64(max(ready, 0)))
			e.sample(name, g.labels, `endpoint_state="pending"`, uint64(max(pending, 0)))
		}
	}
}
