// Package outpolicy is the proxy's client side of the OutboundPolicies API: for each
// outbound Service target it follows the policy controller's Watch stream and turns the
// answer into a route table (HTTPRoute and GRPCRoute rules with their matches, filters,
// weighted backends and timeouts), and routes each request by it. Requests are matched
// to rules by routematch, as inbound routes are (inpolicy).
//
// The policy controller's answers are not trusted: a policy that cannot be compiled is
// reported and the previous one stays in force.
package outpolicy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	"github.com/l5d-go/l5d/proto/gen/meta"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/routematch"
	"github.com/l5d-go/l5d/proxy/routes"
)

// Limits on what a policy may declare, so that a hostile answer cannot make the proxy
// allocate without bound.
const (
	maxRules    = 1024
	maxBackends = 256
)

// grpcNotFound is the gRPC status of a gRPC request matching no route.
const grpcNotFound = 5

// Policy is the compiled HTTP (or gRPC) routing of one outbound target. A nil *Policy
// routes nothing (the target's own balancer and profile apply).
type Policy struct {
	rules []*Rule
	// match[i] is what chooses rules[i].
	match routematch.Table
	grpc  bool
	// trivial means the policy only forwards every request to the target itself: the
	// controller's default route without filters, timeouts or retries. Such a target
	// keeps the proxy's plain forwarding path.
	trivial bool
	// accrual is the failure accrual of the target's backends; nil for none.
	accrual *routes.Accrual
	// parent is the Service the policy is for (the parent_* metric labels).
	parent metrics.Ref
	// opaqueRefusal, when set, is why opaque connections to the target are refused: the
	// first opaque route's rule carries a Forbidden or Invalid filter (an EgressNetwork
	// with trafficPolicy Deny, say).
	opaqueRefusal string
	// opaque is the opaque route's rule: where opaque connections go; nil without one.
	opaque *Rule
	// tls are the TLS routes of a TLS policy (TLSRoutes), matched by server name.
	tls []*tlsRoute
}

// Rule is one compiled rule of a route: which requests it takes and what happens to them.
type Rule struct {
	// Group, Kind and Name identify the route the rule belongs to (kind "default" for
	// the controller's generated route).
	Group, Kind, Name string
	filters           filters
	backends          []backendRef
	totalWeight       uint64
	// Timeout bounds each attempt until the response headers arrive; 0 means none.
	Timeout time.Duration
	// Retries is how many times a failed request may be sent again; retryOn says which
	// responses count as failed (connection failures and timeouts always do).
	Retries int
	retryOn func(status int, grpcStatus string) bool
	// route is what requests on a rule with a timeout or retries are forwarded under
	// (see Watcher.bindRoutes); nil otherwise.
	route *routes.Route
	// ref is the route the rule belongs to (the route_* metric labels), and metrics its
	// series in the route families (see Watcher.bindRoutes).
	ref     metrics.Ref
	metrics *routeMetrics
}

// maxRetries bounds the retries of one request whatever the policy says.
const maxRetries = 100

// httpRetry compiles an HTTP route's retry policy: failed responses are those in the
// status ranges (5xx when none is given).
func (r *Rule) httpRetry(rp *pb.HttpRoute_Retry) error {
	if rp == nil || rp.GetMaxRetries() == 0 {
		return nil
	}
	type span struct{ lo, hi int }
	var spans []span
	for _, sr := range rp.GetConditions().GetStatusRanges() {
		lo, hi := int(sr.GetStart()), int(sr.GetEnd())
		if hi == 0 {
			hi = lo
		}
		if lo < 100 || hi > 599 || lo > hi {
			return fmt.Errorf("retry status range %d-%d is not a range of HTTP statuses", sr.GetStart(), sr.GetEnd())
		}
		spans = append(spans, span{lo, hi})
	}
	if len(spans) == 0 {
		spans = []span{{500, 599}}
	}
	r.Retries = min(int(rp.GetMaxRetries()), maxRetries)
	r.retryOn = func(status int, _ string) bool {
		for _, s := range spans {
			if status >= s.lo && status <= s.hi {
				return true
			}
		}
		return false
	}
	r.Timeout = shorter(r.Timeout, positive(rp.GetTimeout()))
	return nil
}

// grpcRetry compiles a gRPC route's retry policy: failed responses are those whose
// grpc-status is one of the conditions' codes.
func (r *Rule) grpcRetry(rp *pb.GrpcRoute_Retry) {
	if rp == nil || rp.GetMaxRetries() == 0 {
		return
	}
	c := rp.GetConditions()
	codes := map[string]bool{"1": c.GetCancelled(), "4": c.GetDeadineExceeded(), "8": c.GetResourceExhausted(),
		"13": c.GetInternal(), "14": c.GetUnavailable()}
	r.Retries = min(int(rp.GetMaxRetries()), maxRetries)
	r.retryOn = func(_ int, grpcStatus string) bool { return codes[grpcStatus] }
	r.Timeout = shorter(r.Timeout, positive(rp.GetTimeout()))
}

// shorter returns the shorter of two timeouts, where 0 means none.
func shorter(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// backendRef is one weighted backend of a rule: a Service resolved through the
// Destination API by its authority, or a failure when the backend does not resolve.
type backendRef struct {
	authority string // "name.ns.svc.cluster.local:port"; "" when the backend cannot be reached
	weight    uint32
	filters   filters
	// ref is the backend's resource (the backend_* metric labels); metrics and gauge are
	// its series in the route-backend and balancer families (see Watcher.bindRoutes).
	ref     metrics.Ref
	metrics *metrics.Requests
	gauge   *metrics.BalancerGauge
}

type header struct{ name, value string }

// filters are a rule's or a backend's request filters.
type filters struct {
	set, add []header
	remove   []string
	fail     *failure
	redirect *redirect
	rewrite  *rewrite
	// respMod applies the response header modifiers; nil when there are none.
	respMod func(http.Header)
}

// headerEdit is a compiled header modifier.
type headerEdit struct {
	set, add []header
	remove   []string
}

func (e *headerEdit) apply(h http.Header) {
	for _, hv := range e.set {
		h[hv.name] = []string{hv.value}
	}
	for _, hv := range e.add {
		h[hv.name] = append(h[hv.name], hv.value)
	}
	for _, name := range e.remove {
		delete(h, name)
	}
}

// failure is a failure injector: a fraction num/den of requests get status (or, for
// gRPC, grpc-status code) with message.
type failure struct {
	status, code int
	message      string
	num, den     uint32
}

// Trivial reports whether the policy only forwards every request to the target itself,
// so requests need no per-request policy routing. A nil policy is trivial.
func (p *Policy) Trivial() bool { return p == nil || p.trivial }

// GRPC reports whether the policy's routes are gRPC routes.
func (p *Policy) GRPC() bool { return p != nil && p.grpc }

// Rules returns the compiled rules, in declaration order.
func (p *Policy) Rules() []*Rule {
	if p == nil {
		return nil
	}
	return p.rules
}

// FromProto compiles an OutboundPolicy. Opaque and TLS policies (and a nil message) give
// a nil policy: their HTTP traffic, if any, is not routed by the policy. Detect and
// HTTP/1 policies use their HTTP/1 routes (the controller sends the same routes for
// HTTP/2), HTTP/2 policies their HTTP/2 routes, gRPC policies their gRPC routes.
func FromProto(m *pb.OutboundPolicy) (*Policy, error) {
	proto := m.GetProtocol()
	var p *Policy
	var fa *pb.FailureAccrual
	var err error
	var opaque []*pb.OpaqueRoute
	switch {
	case proto.GetDetect() != nil:
		p, err = compileHTTP(proto.GetDetect().GetHttp1().GetRoutes())
		fa = proto.GetDetect().GetHttp1().GetFailureAccrual()
		opaque = proto.GetDetect().GetOpaque().GetRoutes()
	case len(proto.GetOpaque().GetRoutes()) > 0:
		// Opaque routes route no request, only connections.
		p, opaque = &Policy{trivial: true}, proto.GetOpaque().GetRoutes()
	case len(proto.GetTls().GetRoutes()) > 0:
		p = &Policy{trivial: true}
		p.tls, err = compileTLS(proto.GetTls().GetRoutes())
	case proto.GetHttp1() != nil:
		p, err = compileHTTP(proto.GetHttp1().GetRoutes())
		fa = proto.GetHttp1().GetFailureAccrual()
	case proto.GetHttp2() != nil:
		p, err = compileHTTP(proto.GetHttp2().GetRoutes())
		fa = proto.GetHttp2().GetFailureAccrual()
	case proto.GetGrpc() != nil:
		p, err = compileGRPC(proto.GetGrpc().GetRoutes())
		fa = proto.GetGrpc().GetFailureAccrual()
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if p.accrual, err = compileAccrual(fa); err != nil {
		return nil, err
	}
	p.parent = metaRef(m.GetMetadata())
	p.opaqueRefusal = opaqueRefusal(opaque)
	if p.opaque, err = compileOpaque(opaque); err != nil {
		return nil, err
	}
	if p.accrual != nil {
		p.trivial = false
	}
	return p, nil
}

// opaqueRefusal is why the first opaque route refuses connections ("" when it does not):
// its first rule's Forbidden filter, or an Invalid one's message.
func opaqueRefusal(routes []*pb.OpaqueRoute) string {
	if len(routes) == 0 || len(routes[0].GetRules()) == 0 {
		return ""
	}
	_, _, name := routeMeta(routes[0].GetMetadata())
	for _, f := range routes[0].GetRules()[0].GetFilters() {
		switch {
		case f.GetForbidden() != nil:
			return "connection forbidden by route " + name
		case f.GetInvalid() != nil:
			return "invalid route " + name + ": " + f.GetInvalid().GetMessage()
		}
	}
	return ""
}

// OpaqueRefusal is why opaque connections to the target are refused, "" when they are not.
func (p *Policy) OpaqueRefusal() string {
	if p == nil {
		return ""
	}
	return p.opaqueRefusal
}

// compileAccrual compiles consecutive-failure accrual (nil when there is none); the
// penalty defaults to 1s..1m like Linkerd's.
func compileAccrual(fa *pb.FailureAccrual) (*routes.Accrual, error) {
	cf := fa.GetConsecutiveFailures()
	if cf == nil {
		return nil, nil
	}
	if cf.GetMaxFailures() == 0 {
		return nil, errors.New("failure accrual with max_failures 0")
	}
	a := &routes.Accrual{MaxFailures: int(min(cf.GetMaxFailures(), 1<<20)), MinPenalty: time.Second, MaxPenalty: time.Minute}
	b := cf.GetBackoff()
	if d := positive(b.GetMinBackoff()); d > 0 {
		a.MinPenalty = d
	}
	if d := positive(b.GetMaxBackoff()); d > 0 {
		a.MaxPenalty = d
	}
	if a.MaxPenalty < a.MinPenalty {
		return nil, fmt.Errorf("failure accrual backoff %s..%s: the maximum is below the minimum", a.MinPenalty, a.MaxPenalty)
	}
	if j := float64(b.GetJitterRatio()); j > 0 && j <= 100 {
		a.JitterRatio = j
	} else if j != 0 {
		return nil, fmt.Errorf("failure accrual jitter ratio %v is not within 0..100", b.GetJitterRatio())
	}
	return a, nil
}

// metaRef is the resource md names, as metric labels have it: a generated (default)
// resource has kind "default" and its name.
func metaRef(md *meta.Metadata) metrics.Ref {
	if d := md.GetDefault(); d != "" {
		return metrics.Ref{Kind: "default", Name: d}
	}
	r := md.GetResource()
	return metrics.Ref{Group: r.GetGroup(), Kind: r.GetKind(), Namespace: r.GetNamespace(), Name: r.GetName(),
		Section: r.GetSection(), Port: r.GetPort()}
}

func routeMeta(md *meta.Metadata) (group, kind, name string) {
	if d := md.GetDefault(); d != "" {
		return "", "default", d
	}
	r := md.GetResource()
	return r.GetGroup(), strings.ToLower(r.GetKind()), r.GetName()
}

func compileHTTP(routes []*pb.HttpRoute) (*Policy, error) {
	p := &Policy{trivial: true}
	for _, r := range routes {
		group, kind, name := routeMeta(r.GetMetadata())
		for i, rule := range r.GetRules() {
			if len(p.rules) >= maxRules {
				return nil, fmt.Errorf("more than %d route rules", maxRules)
			}
			m, err := routematch.HTTP(r.GetHosts(), rule.GetMatches())
			if err != nil {
				return nil, fmt.Errorf("route %s rule %d: %w", name, i, err)
			}
			cr := &Rule{Group: group, Kind: kind, Name: name, ref: metaRef(r.GetMetadata())}
			if cr.filters, err = httpFilters(rule.GetFilters()); err != nil {
				return nil, fmt.Errorf("route %s rule %d: %w", name, i, err)
			}
			//lint:ignore SA1019 controllers before Timeouts send only the deprecated field
			cr.Timeout = timeout(rule.GetTimeouts(), rule.GetRequestTimeout())
			if err := cr.setBackends(httpBackends(rule.GetBackends())); err != nil {
				return nil, fmt.Errorf("route %s rule %d: %w", name, i, err)
			}
			cr.setMatchedPrefixes(rule.GetMatches())
			if err := cr.httpRetry(rule.GetRetry()); err != nil {
				return nil, fmt.Errorf("route %s rule %d: %w", name, i, err)
			}
			p.trivial = p.trivial && kind == "default" && cr.plain() && rule.GetRetry() == nil && len(r.GetHosts()) == 0
			p.rules, p.match = append(p.rules, cr), append(p.match, m)
		}
	}
	return p, nil
}

func compileGRPC(routes []*pb.GrpcRoute) (*Policy, error) {
	p := &Policy{grpc: true, trivial: true}
	for _, r := range routes {
		group, kind, name := routeMeta(r.GetMetadata())
		for i, rule := range r.GetRules() {
			if len(p.rules) >= maxRules {
				return nil, fmt.Errorf("more than %d route rules", maxRules)
			}
			m, err := routematch.GRPC(r.GetHosts(), rule.GetMatches())
			if err != nil {
				return nil, fmt.Errorf("route %s rule %d: %w", name, i, err)
			}
			cr := &Rule{Group: group, Kind: kind, Name: name, ref: metaRef(r.GetMetadata())}
			if cr.filters, err = grpcFilters(rule.GetFilters()); err != nil {
				return nil, fmt.Errorf("route %s rule %d: %w", name, i, err)
			}
			//lint:ignore SA1019 controllers before Timeouts send only the deprecated field
			cr.Timeout = timeout(rule.GetTimeouts(), rule.GetRequestTimeout())
			if err := cr.setBackends(grpcBackends(rule.GetBackends())); err != nil {
				return nil, fmt.Errorf("route %s rule %d: %w", name, i, err)
			}
			cr.grpcRetry(rule.GetRetry())
			p.trivial = p.trivial && kind == "default" && cr.plain() && rule.GetRetry() == nil && len(r.GetHosts()) == 0
			p.rules, p.match = append(p.rules, cr), append(p.match, m)
		}
	}
	return p, nil
}

// plain reports whether the rule only forwards to one backend, unchanged.
// setMatchedPrefixes gives the redirects and rewrites of the rule and its backends that
// replace a matched prefix the prefixes of the rule's path matches.
func (r *Rule) setMatchedPrefixes(ms []*httproute.HttpRouteMatch) {
	var prefixes []string
	for _, m := range ms {
		if pfx := m.GetPath().GetPrefix(); pfx != "" {
			prefixes = append(prefixes, pfx)
		}
	}
	set := func(f *filters) {
		if f.redirect != nil {
			f.redirect.prefixes = prefixes
		}
		if f.rewrite != nil {
			f.rewrite.prefixes = prefixes
		}
	}
	set(&r.filters)
	for i := range r.backends {
		set(&r.backends[i].filters)
	}
}

func (r *Rule) plain() bool {
	return r.filters.empty() && r.Timeout == 0 && r.Retries == 0 && len(r.backends) == 1 && r.backends[0].filters.empty() && r.backends[0].authority != ""
}

// timeout is the bound of one attempt: the shorter of the request and response
// timeouts, or the deprecated request timeout.
func timeout(t *httproute.Timeouts, deprecated *durationpb.Duration) time.Duration {
	d := positive(t.GetRequest())
	if r := positive(t.GetResponse()); r > 0 && (d == 0 || r < d) {
		d = r
	}
	if d == 0 {
		d = positive(deprecated)
	}
	return d
}

func positive(d *durationpb.Duration) time.Duration {
	if d == nil || d.CheckValid() != nil {
		return 0
	}
	if v := d.AsDuration(); v > 0 {
		return v
	}
	return 0
}

// rawBackend is a backend of either route kind before compilation.
type rawBackend struct {
	backend *pb.Backend
	weight  uint32
	filters filters
	err     error
}

func httpBackends(d *pb.HttpRoute_Distribution) []rawBackend {
	var out []rawBackend
	switch {
	case d.GetFirstAvailable() != nil:
		if bs := d.GetFirstAvailable().GetBackends(); len(bs) > 0 { // the first takes every request
			f, err := httpFilters(bs[0].GetFilters())
			out = append(out, rawBackend{backend: bs[0].GetBackend(), weight: 1, filters: f, err: err})
		}
	case d.GetRandomAvailable() != nil:
		for _, wb := range d.GetRandomAvailable().GetBackends() {
			f, err := httpFilters(wb.GetBackend().GetFilters())
			out = append(out, rawBackend{backend: wb.GetBackend().GetBackend(), weight: wb.GetWeight(), filters: f, err: err})
		}
	}
	return out
}

func grpcBackends(d *pb.GrpcRoute_Distribution) []rawBackend {
	var out []rawBackend
	switch {
	case d.GetFirstAvailable() != nil:
		if bs := d.GetFirstAvailable().GetBackends(); len(bs) > 0 {
			f, err := grpcFilters(bs[0].GetFilters())
			out = append(out, rawBackend{backend: bs[0].GetBackend(), weight: 1, filters: f, err: err})
		}
	case d.GetRandomAvailable() != nil:
		for _, wb := range d.GetRandomAvailable().GetBackends() {
			f, err := grpcFilters(wb.GetBackend().GetFilters())
			out = append(out, rawBackend{backend: wb.GetBackend().GetBackend(), weight: wb.GetWeight(), filters: f, err: err})
		}
	}
	return out
}

// setBackends compiles a rule's distribution. A backend without a Destination path is
// kept as a failing backend: its share of requests fails, as the Gateway API asks for a
// backendRef that does not resolve.
func (r *Rule) setBackends(bs []rawBackend) error {
	if len(bs) > maxBackends {
		return fmt.Errorf("more than %d backends", maxBackends)
	}
	for i, b := range bs {
		if b.err != nil {
			return fmt.Errorf("backend %d: %w", i, b.err)
		}
		ref := backendRef{weight: b.weight, filters: b.filters, ref: metaRef(b.backend.GetMetadata())}
		if path := b.backend.GetBalancer().GetDiscovery().GetDst().GetPath(); path != "" {
			if !validAuthority(path) {
				return fmt.Errorf("backend %d: destination path %q is not a host:port authority", i, path)
			}
			ref.authority = strings.ToLower(strings.TrimSuffix(path, "."))
		} else if fwd := b.backend.GetForward(); fwd != nil {
			// A forward to one address (the original destination of egress traffic),
			// resolved by the router's ResolveFunc like a Service authority.
			a, ok := netconv.AddrPort(fwd.GetAddr())
			if !ok {
				return fmt.Errorf("backend %d: forward address is not an IP address and port", i)
			}
			ref.authority = a.String()
		}
		r.totalWeight += uint64(b.weight)
		r.backends = append(r.backends, ref)
	}
	return nil
}

// validAuthority reports whether s is "host:port" with a DNS-like host and a port.
func validAuthority(s string) bool {
	host, port, ok := strings.Cut(s, ":")
	if !ok || host == "" || port == "" || len(port) > 5 || len(s) > 300 {
		return false
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	for _, c := range host {
		if !(c == '.' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func httpFilters(fs []*pb.HttpRoute_Filter) (filters, error) {
	var out filters
	for _, f := range fs {
		switch {
		case f.GetRequestHeaderModifier() != nil:
			if err := out.headerModifier(f.GetRequestHeaderModifier()); err != nil {
				return out, err
			}
		case f.GetFailureInjector() != nil:
			fi := f.GetFailureInjector()
			st := int(fi.GetStatus())
			if st < 100 || st > 599 {
				return out, fmt.Errorf("failure injector status %d is not an HTTP status", fi.GetStatus())
			}
			fl, err := newFailure(fi.GetMessage(), fi.GetRatio())
			if err != nil {
				return out, err
			}
			fl.status, fl.code = st, grpcCodeFor(st)
			out.fail = fl
		case f.GetRedirect() != nil:
			rd, err := compileRedirect(f.GetRedirect())
			if err != nil {
				return out, err
			}
			out.redirect = rd
		case f.GetUrlRewrite() != nil:
			rw, err := compileRewrite(f.GetUrlRewrite())
			if err != nil {
				return out, err
			}
			out.rewrite = rw
		case f.GetResponseHeaderModifier() != nil:
			m := f.GetResponseHeaderModifier()
			var e filters
			if err := e.headerModifier(&httproute.RequestHeaderModifier{Set: m.GetSet(), Add: m.GetAdd(), Remove: m.GetRemove()}); err != nil {
				return out, fmt.Errorf("response %w", err)
			}
			edit := &headerEdit{set: e.set, add: e.add, remove: e.remove}
			out.respMod = combine(out.respMod, edit.apply)
		default:
			return out, errors.New("filter of an unknown kind")
		}
	}
	return out, nil
}

func grpcFilters(fs []*pb.GrpcRoute_Filter) (filters, error) {
	var out filters
	for _, f := range fs {
		switch {
		case f.GetRequestHeaderModifier() != nil:
			if err := out.headerModifier(f.GetRequestHeaderModifier()); err != nil {
				return out, err
			}
		case f.GetFailureInjector() != nil:
			fi := f.GetFailureInjector()
			if fi.GetCode() == 0 || fi.GetCode() > 16 {
				return out, fmt.Errorf("failure injector gRPC code %d is not an error code", fi.GetCode())
			}
			fl, err := newFailure(fi.GetMessage(), fi.GetRatio())
			if err != nil {
				return out, err
			}
			fl.status, fl.code = http.StatusInternalServerError, int(fi.GetCode())
			out.fail = fl
		default:
			return out, errors.New("filter of an unknown kind")
		}
	}
	return out, nil
}

func newFailure(msg string, ratio *httproute.Ratio) (*failure, error) {
	f := &failure{message: msg, num: 1, den: 1}
	if ratio != nil {
		if ratio.GetDenominator() == 0 || ratio.GetNumerator() > ratio.GetDenominator() {
			return nil, fmt.Errorf("failure injector ratio %d/%d is not a fraction", ratio.GetNumerator(), ratio.GetDenominator())
		}
		f.num, f.den = ratio.GetNumerator(), ratio.GetDenominator()
	}
	if f.message == "" {
		f.message = "injected failure"
	}
	return f, nil
}

// grpcCodeFor is the grpc-status a gRPC client gets for an injected HTTP failure.
func grpcCodeFor(status int) int {
	switch status {
	case http.StatusNotFound:
		return grpcNotFound
	case http.StatusGatewayTimeout:
		return 4
	}
	return 14
}

func (f *filters) headerModifier(m *httproute.RequestHeaderModifier) error {
	conv := func(hs *httptypes.Headers) ([]header, error) {
		var out []header
		for _, h := range hs.GetHeaders() {
			if !validHeaderName(h.GetName()) {
				return nil, fmt.Errorf("header modifier: %q is not a header name", h.GetName())
			}
			if strings.ContainsAny(string(h.GetValue()), "\r\n\x00") {
				return nil, fmt.Errorf("header modifier: the value of %s has a line break", h.GetName())
			}
			out = append(out, header{http.CanonicalHeaderKey(h.GetName()), string(h.GetValue())})
		}
		return out, nil
	}
	set, err := conv(m.GetSet())
	if err != nil {
		return err
	}
	add, err := conv(m.GetAdd())
	if err != nil {
		return err
	}
	f.set, f.add = append(f.set, set...), append(f.add, add...)
	for _, name := range m.GetRemove() {
		if !validHeaderName(name) {
			return fmt.Errorf("header modifier: %q is not a header name", name)
		}
		f.remove = append(f.remove, http.CanonicalHeaderKey(name))
	}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

func (f *filters) empty() bool {
	return len(f.set) == 0 && len(f.add) == 0 && len(f.remove) == 0 && f.fail == nil && f.redirect == nil && f.rewrite == nil && f.respMod == nil
}

// apply modifies h by the header filters and returns the injected failure, if this
// request gets one.
func (f *filters) apply(h http.Header) *failure {
	if f.fail != nil && (f.fail.num == f.fail.den || rand.Uint32N(f.fail.den) < f.fail.num) {
		return f.fail
	}
	for _, hv := range f.set {
		h[hv.name] = []string{hv.value}
	}
	for _, hv := range f.add {
		h[hv.name] = append(h[hv.name], hv.value)
	}
	for _, name := range f.remove {
		delete(h, name)
	}
	return nil
}

// Match returns the rule of r: the most specific match wins, and between equally
// specific ones the first declared. ok=false means no rule matches.
func (p *Policy) Match(r *http.Request) (*Rule, bool) {
	if p == nil {
		return nil, false
	}
	path, _ := routematch.RequestPath(r) // outbound routing is not authorization: best effort
	i, ok := p.match.Best(r, path)
	if !ok {
		return nil, false
	}
	return p.rules[i], true
}

// pick chooses a backend at random by weight; nil when the rule has no backend with a
// weight.
func (r *Rule) pick() *backendRef {
	if r.totalWeight == 0 {
		return nil
	}
	n := rand.Uint64N(r.totalWeight)
	for i := range r.backends {
		b := &r.backends[i]
		if n < uint64(b.weight) {
			return b
		}
		n -= uint64(b.weight)
	}
	return nil
}
