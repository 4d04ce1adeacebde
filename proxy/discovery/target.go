package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l5d-go/l5d/proto/gen/destination"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// errSwept is waitReady's error for a watch the sweeper dropped as idle before a request
// could wait on it.
var errSwept = errors.New("discovery stream dropped as idle")

// Resolution states of a watch.
const (
	statePending int32 = iota // no answer yet: requests wait for one
	stateKnown                // the control plane knows the target
	stateUnknown              // not a service: forward to the original destination
)

// watch is the state shared by Get and GetProfile streams: usage tracking, the first
// answer's arrival and the resolution state.
type watch struct {
	usage
	r      *Resolver
	what   string // the target, for logs and errors
	ctx    context.Context
	cancel context.CancelFunc

	readyOnce sync.Once
	ready     chan struct{}
	state     atomic.Int32
	// failfast is set once a request waited the whole resolve timeout without an answer:
	// later requests fail at once until the first answer arrives.
	failfast atomic.Bool
	// lastErr is the latest stream error, for the error requests get while pending.
	lastErr atomic.Pointer[error]

	// Owned by the stream goroutine.
	stale bool
}

func (w *watch) init(r *Resolver, what string) {
	w.r, w.what = r, what
	w.ctx, w.cancel = context.WithCancel(r.ctx)
	w.ready = make(chan struct{})
	w.lastSeen.Store(time.Now().UnixNano())
}

func (w *watch) stop() { w.cancel() }

func (w *watch) resolved() bool { return w.state.Load() != statePending }

func (w *watch) setState(s int32) {
	w.state.Store(s)
	w.readyOnce.Do(func() { close(w.ready) })
}

// waitReady waits for the first answer, at most timeout, and returns nil once there is
// one. Without an answer in time it returns an error wrapping balance.ErrFailfast and puts
// the watch in failfast: until the answer arrives, later calls return an error wrapping
// balance.ErrUnavailable at once. A target the control plane has not answered for is
// never treated as unknown: forwarding it in plaintext could bypass mesh TLS for a
// service that is meshed.
//
// A waiting request holds the watch, so the sweeper does not drop it (stopping the stream
// whose answer the request waits for) however long the answer takes; it returns errSwept
// when the sweeper dropped the watch before the request got hold of it: the caller then
// starts a new one.
func (w *watch) waitReady(ctx context.Context, timeout time.Duration) error {
	if w.resolved() {
		return nil
	}
	if w.failfast.Load() {
		return w.noAnswer(balance.ErrUnavailable)
	}
	if !w.hold() {
		return errSwept
	}
	defer w.release()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the control plane to answer for %s: %w", w.what, ctx.Err())
	case <-t.C:
		if w.resolved() {
			return nil
		}
		if w.failfast.CompareAndSwap(false, true) {
			w.r.opts.Log.Warn("control plane did not answer in time; failing requests until it does",
				"target", w.what, "waited", timeout, "error", w.lastError())
		}
		return w.noAnswer(balance.ErrFailfast)
	}
}

func (w *watch) lastError() error {
	if p := w.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// noAnswer is the error of a request for a target the control plane has not answered.
func (w *watch) noAnswer(kind error) error {
	if err := w.lastError(); err != nil {
		return fmt.Errorf("no answer from the control plane for %s (%v): %w", w.what, err, kind)
	}
	return fmt.Errorf("no answer from the control plane for %s: %w", w.what, kind)
}

// connected records that a stream delivered an answer.
func (w *watch) connected(what string) {
	if w.stale {
		w.stale = false
		w.r.stale.Add(-1)
		w.r.opts.Log.Info("discovery stream recovered", "target", what)
	}
}

// broken records that a stream ended. A target with an answer keeps it (stale); one
// without stays pending, so its requests keep waiting for the next attempt.
func (w *watch) broken(what string, err error) {
	if w.ctx.Err() != nil {
		return
	}
	w.lastErr.Store(&err)
	if !w.stale && w.state.Load() == stateKnown {
		w.stale = true
		w.r.stale.Add(1)
		w.r.opts.Log.Warn("discovery stream lost; serving the last known state", "target", what, "error", err)
		return
	}
	w.r.opts.Log.Debug("discovery stream failed", "target", what, "error", err)
}

func (w *watch) finish() {
	if w.stale {
		w.stale = false
		w.r.stale.Add(-1)
	}
}

// loop runs stream until the watch stops, re-opening it with jittered backoff.
// stream reports whether it received at least one message.
func (w *watch) loop(what string, stream func() (bool, error)) {
	defer w.r.wg.Done()
	defer w.finish()
	attempt := 0
	for {
		got, err := stream()
		if w.ctx.Err() != nil {
			return
		}
		if got {
			attempt = 0
		}
		if notAService(err) {
			w.setState(stateUnknown)
			w.connected(what)
		} else {
			w.broken(what, err)
		}
		if !sleep(w.ctx, w.r.backoff(attempt)) {
			return
		}
		attempt++
	}
}

// target is one logical name's Get stream and its balanced backend.
type target struct {
	watch
	authority string
	be        *forward.Backend

	// Owned by the stream goroutine.
	eps map[netip.AddrPort]*endpoint
}

// endpoint is one discovered address with the attributes its forwarding state was
// built from.
type endpoint struct {
	bep    *balance.Endpoint[*forward.Endpoint]
	id     string
	h2     bool
	labels string
	// transport is the opaque transport's inbound port, 0 for none.
	transport uint16
	// override is the authority requests and opaque connections name at this endpoint
	// (a multicluster gateway's), "" for none.
	override string
}

func newTarget(r *Resolver, authority string) *target {
	t := &target{authority: authority, eps: map[netip.AddrPort]*endpoint{}}
	t.init(r, authority)
	t.be = &forward.Backend{Name: authority, Balancer: balance.New[*forward.Endpoint](r.opts.Balancer)}
	return t
}

func (t *target) backend() (*forward.Backend, bool) {
	if t.state.Load() == stateKnown {
		return t.be, true
	}
	return nil, false
}

// wait returns the target's backend once the control plane has answered; see
// watch.waitReady for the error.
func (t *target) wait(ctx context.Context, timeout time.Duration) (*forward.Backend, bool, error) {
	if err := t.waitReady(ctx, timeout); err != nil {
		return nil, false, err
	}
	be, ok := t.backend()
	return be, ok, nil
}

func (t *target) run() {
	defer t.releaseIDs()
	t.loop(t.authority, t.stream)
}

func (t *target) releaseIDs() {
	for a, e := range t.eps {
		t.r.dropID(a, e.id)
	}
}

func (t *target) stream() (bool, error) {
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	s, err := t.r.opts.Client.Get(ctx, &destination.GetDestination{
		Scheme: "k8s", Path: t.authority, ContextToken: t.r.opts.ContextToken})
	if err != nil {
		return false, fmt.Errorf("opening Destination.Get for %s: %w", t.authority, err)
	}
	first := true
	for {
		u, err := s.Recv()
		if err != nil {
			return !first, fmt.Errorf("Destination.Get for %s: %w", t.authority, err)
		}
		if first {
			t.connected(t.authority)
		}
		t.apply(u, first)
		first = false
	}
}

// apply merges one update into the endpoint set; the first update of a (re)opened stream
// replaces the set, since the server starts every stream with its whole state.
func (t *target) apply(u *destination.Update, replace bool) {
	var next map[netip.AddrPort]*endpoint
	if replace {
		next = make(map[netip.AddrPort]*endpoint, len(t.eps))
	} else {
		next = maps.Clone(t.eps)
	}
	state := stateKnown
	switch {
	case u.GetAdd() != nil:
		set := u.GetAdd()
		for _, wa := range set.GetAddrs() {
			addr, ok := tcpAddr(wa.GetAddr())
			if !ok {
				t.r.opts.Log.Warn("discovery update has an invalid address; ignored", "target", t.authority)
				continue
			}
			e := t.r.endpointFor(t.authority, addr, set.GetMetricLabels(), wa)
			if old := t.eps[addr]; old != nil && old.same(e) {
				e = old
			}
			next[addr] = e
		}
	case u.GetRemove() != nil:
		for _, ta := range u.GetRemove().GetAddrs() {
			if addr, ok := tcpAddr(ta); ok {
				delete(next, addr)
			}
		}
	case u.GetNoEndpoints() != nil:
		clear(next)
		if !u.GetNoEndpoints().GetExists() {
			state = stateUnknown
		}
	default:
		return
	}
	// Identities: register the new set's before dropping the old set's.
	for a, e := range next {
		if t.eps[a] != e {
			t.r.addID(a, e.id, e.transport)
		}
	}
	for a, e := range t.eps {
		if next[a] != e {
			t.r.dropID(a, e.id)
		}
	}
	t.eps = next
	list := make([]*balance.Endpoint[*forward.Endpoint], 0, len(next))
	for _, e := range next {
		list = append(list, e.bep)
	}
	t.be.Balancer.Set(list)
	t.setState(state)
}

func (e *endpoint) same(o *endpoint) bool {
	return e.id == o.id && e.h2 == o.h2 && e.labels == o.labels && e.transport == o.transport && e.override == o.override
}

// endpointFor builds the forwarding state of a discovered address: its metric labels
// (dst_* from the set and the address, tls from its identity) and protocol hint.
func (r *Resolver) endpointFor(authority string, addr netip.AddrPort, setLabels map[string]string, wa *destination.WeightedAddr) *endpoint {
	lbl := setLabels
	if len(wa.GetMetricLabels()) > 0 {
		lbl = maps.Clone(setLabels)
		if lbl == nil {
			lbl = map[string]string{}
		}
		maps.Copy(lbl, wa.GetMetricLabels())
	}
	id := identityOf(wa)
	tls := metrics.Labels("tls", "no_identity", "no_tls_reason", "not_provided_by_service_discovery")
	if id != "" {
		tls = metrics.Labels("tls", "true", "server_id", id)
	}
	h2 := wa.GetProtocolHint().GetH2() != nil
	labels := metrics.Join(metrics.Labels("direction", "outbound", "authority", authority,
		"target_addr", addr.String(), "target_ip", addr.Addr().String()), metrics.DstLabels(lbl), tls)
	fe := forward.NewEndpoint(addr, h2, r.opts.Metrics.HTTP(labels))
	fe.TapLabels = tapLabels(lbl, id)
	var transport uint16
	if p := wa.GetProtocolHint().GetOpaqueTransport().GetInboundPort(); p > 0 && p <= 65535 {
		transport = uint16(p)
	}
	override := authorityOverride(wa)
	if override != "" && id == "" {
		// Only a gateway reached over mesh TLS may be told which Service to forward to.
		r.opts.Log.Warn("discovery gave an authority override to an endpoint without identity; ignored", "target", authority, "addr", addr)
		override = ""
	}
	fe.AuthorityOverride = override
	return &endpoint{bep: balance.NewEndpoint(addr, fe), id: id, h2: h2, labels: labels, transport: transport, override: override}
}

// tapLabels are the labels tap clients see of an endpoint: its dst labels from
// discovery, and tls with the server_id it is reached as.
func tapLabels(dst map[string]string, id string) map[string]string {
	l := maps.Clone(dst)
	if l == nil {
		l = map[string]string{}
	}
	if id != "" {
		l["tls"], l["server_id"] = "true", id
	} else {
		l["tls"] = "not_provided_by_service_discovery"
	}
	return l
}

// authorityOverride returns the "name:port" the endpoint's requests must name (Linkerd's
// WeightedAddr.authority_override, set for multicluster gateways), or "" when there is
// none or it is not a name with a port.
func authorityOverride(wa *destination.WeightedAddr) string {
	a := wa.GetAuthorityOverride().GetAuthorityOverride()
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return ""
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return ""
	}
	return strings.ToLower(a)
}

// identityOf returns the DNS-like TLS identity of a discovered address, or "".
func identityOf(wa *destination.WeightedAddr) string {
	return wa.GetTlsIdentity().GetDnsLikeIdentity().GetName()
}

// tcpAddr converts a protobuf address; port 0 is refused.
func tcpAddr(a *pbnet.TcpAddress) (netip.AddrPort, bool) {
	ap, ok := netconv.AddrPort(a)
	return ap, ok && ap.Port() != 0
}
