// Package outbound routes the application's outgoing traffic: it chooses each HTTP
// request's target (in ingress mode l5d-dst-override first, then a Host in a profile
// suffix, then the original destination), resolves it to a balanced backend through
// discovery, and relays opaque connections to a balanced endpoint or to their original
// destination.
package outbound

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/l5d-go/l5d/proxy/accept"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/opaque"
	"github.com/l5d-go/l5d/proxy/tlssni"
)

// HeaderDstOverride names the target explicitly; only honoured in ingress mode
// (Options.IngressMode), as in Linkerd.
const HeaderDstOverride = "L5d-Dst-Override"

// Discovery resolves targets to backends whose endpoints follow the control plane. Both
// methods return ok=false with a nil error when the control plane says the target is
// not a service; the proxy then forwards to the original destination. They return an
// error when there is no answer (the control plane is slow or away and the target is
// new): the request or connection then fails rather than bypass discovery, since the
// target may be a meshed service that must be reached over mesh TLS.
type Discovery interface {
	// Name resolves a logical authority "name:port" (a name in a profile suffix).
	Name(ctx context.Context, authority string) (be *forward.Backend, ok bool, err error)
	// Addr resolves an original destination IP:port (a ClusterIP or pod address).
	Addr(ctx context.Context, dst netip.AddrPort) (be *forward.Backend, ok bool, err error)
}

// ConnectOpaqueFunc opens an opaque connection to a discovered endpoint address; a
// non-empty authority ("name:port") is the Service the endpoint must be told the
// connection is for (a multicluster gateway's authority override).
type ConnectOpaqueFunc func(ctx context.Context, addr, authority string) (net.Conn, error)

// Options configures a Router.
type Options struct {
	// Suffixes are the DNS suffixes (with trailing dots) resolved through discovery.
	Suffixes []string
	// Networks are the address ranges resolved through discovery.
	Networks []netip.Prefix
	// Discovery is nil when the proxy runs without a control plane.
	Discovery Discovery
	// Metrics records forwarded traffic.
	Metrics *metrics.Registry
	// Balancer configures the per-backend queues of forwarded targets.
	Balancer balance.Options
	// TLSLabels renders the tls labels of outgoing traffic that is not mesh TLS; opaque
	// connections made over mesh TLS are labelled tls="true" with the server_id the
	// server proved (see meshtls.ServerID).
	TLSLabels string
	// Connect opens opaque connections to endpoints.
	Connect forward.ConnectFunc
	// ConnectOpaque, when set, replaces Connect for connections to discovered endpoints
	// (it may use the opaque transport; see meshtls.Connector.ConnectOpaqueNamed). It is
	// given the endpoint's authority override, "" for none.
	ConnectOpaque ConnectOpaqueFunc
	// IngressMode (LINKERD2_PROXY_INGRESS_MODE, linkerd.io/inject: ingress) routes a
	// request carrying l5d-dst-override to the target it names ("name[:port]", port 80
	// when it has none), whatever its original destination: an ingress controller names
	// the Service it picked. Without it the
	// header is ignored, so an application's clients cannot steer its proxy to any
	// target by sending it.
	IngressMode bool
	// PeekTimeout bounds the wait for the TLS ClientHello of a connection routed by
	// server name (10s when zero).
	PeekTimeout time.Duration
	// Egress, when set, applies the egress policy of destinations outside Networks to
	// their HTTP requests and opaque and TLS connections (see outpolicy.Egress).
	Egress EgressRouter
	Log    *slog.Logger
}

// routeConn returns the backend of an opaque connection to be's target by the opaque or
// TLS routes of its policy (be itself without them); a TLS route's server name is read
// from the connection, which *conn then replays. An error means the route refuses it.
func (rt *Router) routeConn(ctx context.Context, conn *net.Conn, be *forward.Backend) (*forward.Backend, error) {
	pr, ok := be.Policy.(opaqueRouter)
	if !ok {
		return be, nil
	}
	var routed *forward.Backend
	var found bool
	var err error
	if pr.RoutesTLS() {
		var sni string
		if sni, *conn, err = tlssni.Peek(*conn, rt.opts.PeekTimeout); err == nil {
			routed, found, err = pr.PickTLS(ctx, sni)
		}
	} else {
		routed, found, err = pr.PickOpaque(ctx)
	}
	if err != nil || !found {
		return be, err
	}
	return routed, nil
}

// opaqueRouter is a target's outbound policy router that routes opaque connections by the
// policy's opaque route (see outpolicy.Router.PickOpaque).
type opaqueRouter interface {
	PickOpaque(ctx context.Context) (be *forward.Backend, ok bool, err error)
	// RoutesTLS reports whether connections route by TLS server name, with PickTLS.
	RoutesTLS() bool
	PickTLS(ctx context.Context, sni string) (be *forward.Backend, ok bool, err error)
}

// EgressRouter gives the backend forwarding to a destination outside the cluster's
// networks the routing of its egress policy.
type EgressRouter interface {
	Route(ctx context.Context, dst netip.AddrPort, be *forward.Backend) *forward.Backend
}

// Router implements forward.Router for outbound traffic and serves opaque connections.
type Router struct {
	opts Options

	mu      sync.RWMutex
	forward map[forwardKey]*forward.Backend
}

type forwardKey struct {
	dst       netip.AddrPort
	authority string
}

// NewRouter returns an outbound router.
func NewRouter(opts Options) *Router {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.PeekTimeout <= 0 {
		opts.PeekTimeout = 10 * time.Second
	}
	return &Router{opts: opts, forward: map[forwardKey]*forward.Backend{}}
}

// Route picks the backend of an outgoing request; see the package documentation. Every
// request asks discovery again, so a target first forwarded to its original destination
// moves to its discovered backend as soon as the control plane knows it. A discovery
// failure is returned wrapped (balance.ErrFailfast or ErrUnavailable when the control
// plane has not answered).
func (rt *Router) Route(r *http.Request, ci *forward.ConnInfo) (*forward.Backend, error) {
	dst := ci.OrigDst
	if rt.opts.IngressMode {
		if vv := r.Header[HeaderDstOverride]; len(vv) > 0 && vv[0] != "" {
			// Without a port the header names the Service's port 80, as in Linkerd.
			return rt.byName(r.Context(), withPort(vv[0], 80), dst)
		}
	}
	if host, ok := rt.profileName(r.Host); ok {
		return rt.byName(r.Context(), host, dst)
	}
	if rt.opts.Discovery != nil && rt.inNetworks(dst.Addr()) {
		be, ok, err := rt.opts.Discovery.Addr(r.Context(), dst)
		if err != nil {
			return nil, fmt.Errorf("discovering %s: %w", dst, err)
		}
		if ok {
			return be, nil
		}
	}
	if rt.opts.Egress != nil && !rt.inNetworks(dst.Addr()) {
		return rt.opts.Egress.Route(r.Context(), dst, rt.forwardTo(dst, "")), nil
	}
	return rt.forwardTo(dst, ""), nil
}

func (rt *Router) byName(ctx context.Context, authority string, dst netip.AddrPort) (*forward.Backend, error) {
	authority = normalize(withPort(authority, dst.Port()))
	if rt.opts.Discovery != nil {
		be, ok, err := rt.opts.Discovery.Name(ctx, authority)
		if err != nil {
			return nil, fmt.Errorf("discovering %s: %w", authority, err)
		}
		if ok {
			return be, nil
		}
	}
	return rt.forwardTo(dst, authority), nil
}

// profileName returns host when it is in one of the profile suffixes.
func (rt *Router) profileName(host string) (string, bool) {
	if host == "" {
		return "", false
	}
	name := host
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.HasSuffix(name, "]") {
		name = name[:i]
	}
	name = strings.TrimSuffix(name, ".")
	for _, s := range rt.opts.Suffixes {
		if s == "." {
			return host, true
		}
		sfx := strings.TrimSuffix(s, ".")
		if len(name) > len(sfx) && name[len(name)-len(sfx)-1] == '.' && strings.EqualFold(name[len(name)-len(sfx):], sfx) {
			return host, true
		}
	}
	return "", false
}

func (rt *Router) inNetworks(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range rt.opts.Networks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// normalize lower-cases an authority and drops the trailing dot of a fully qualified
// name, so "Web.NS.svc.cluster.local.:80" and "web.ns.svc.cluster.local:80" are one
// target. It does not allocate for an authority that is already normal.
func normalize(authority string) string {
	i := strings.LastIndexByte(authority, ':')
	if i < 0 {
		i = len(authority)
	}
	host := authority[:i]
	if strings.HasSuffix(host, ".") || strings.ToLower(host) != host {
		return strings.ToLower(strings.TrimSuffix(host, ".")) + authority[i:]
	}
	return authority
}

// withPort returns authority with port appended when it has none.
func withPort(authority string, port uint16) string {
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.HasSuffix(authority, "]") {
		return authority
	}
	return authority + ":" + strconv.Itoa(int(port))
}

// forwardTo returns the backend that sends everything to dst, its metrics labelled with
// authority (empty for address targets).
func (rt *Router) forwardTo(dst netip.AddrPort, authority string) *forward.Backend {
	k := forwardKey{dst, authority}
	rt.mu.RLock()
	be := rt.forward[k]
	rt.mu.RUnlock()
	if be != nil {
		return be
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if be = rt.forward[k]; be != nil {
		return be
	}
	if len(rt.forward) >= 10000 {
		clear(rt.forward) // bound memory for proxies that talk to very many addresses
	}
	labels := metrics.Join(metrics.Labels("direction", "outbound", "authority", authority,
		"target_addr", dst.String(), "target_ip", dst.Addr().String()), rt.opts.TLSLabels)
	ep := forward.NewEndpoint(dst, false, rt.opts.Metrics.HTTP(labels))
	bal := balance.New[*forward.Endpoint](rt.opts.Balancer)
	bal.Set([]*balance.Endpoint[*forward.Endpoint]{balance.NewEndpoint(dst, ep)})
	be = &forward.Backend{Name: dst.String(), Balancer: bal}
	rt.forward[k] = be
	return be
}

// ServeTCP relays an opaque connection: balanced across the endpoints of a known
// service, to the original destination when the control plane says it is not a service,
// and closed when discovery has no answer for it.
func (rt *Router) ServeTCP(ctx context.Context, conn net.Conn, ci *forward.ConnInfo, src *metrics.TCP) {
	target := ci.OrigDst
	if rt.opts.Discovery != nil && rt.inNetworks(target.Addr()) {
		be, ok, err := rt.opts.Discovery.Addr(ctx, target)
		if err != nil {
			rt.opts.Log.Debug("closing an opaque connection: discovery failed", "dst", target, "error", err)
			conn.Close()
			return
		}
		if ok {
			// A TCPRoute or TLSRoute of the target's policy may send it elsewhere.
			if be, err = rt.routeConn(ctx, &conn, be); err != nil {
				rt.opts.Log.Debug("closing an opaque connection: its route refuses it", "dst", target, "error", err)
				conn.Close()
				return
			}
			rt.ServeTCPBackend(ctx, conn, be, target.String(), src)
			return
		}
	} else if rt.opts.Egress != nil && !rt.inNetworks(target.Addr()) {
		// Outside the cluster's networks, the EgressNetwork's routes apply.
		fwd := rt.forwardTo(target, "")
		be, err := rt.routeConn(ctx, &conn, rt.opts.Egress.Route(ctx, target, fwd))
		if err != nil {
			rt.opts.Log.Debug("closing an opaque egress connection: its route refuses it", "dst", target, "error", err)
			conn.Close()
			return
		}
		if be != fwd { // a route sends it to a Service
			rt.ServeTCPBackend(ctx, conn, be, target.String(), src)
			return
		}
	}
	rt.relay(ctx, conn, nil, target, src)
}

// RouteName returns the backend of the Service named by authority ("name:port"); ok is
// false when discovery does not know it. A multicluster gateway routes the requests
// addressed to it with it.
func (rt *Router) RouteName(ctx context.Context, authority string) (be *forward.Backend, ok bool, err error) {
	if rt.opts.Discovery == nil {
		return nil, false, nil
	}
	authority = normalize(authority)
	be, ok, err = rt.opts.Discovery.Name(ctx, authority)
	if err != nil {
		return nil, false, fmt.Errorf("discovering %s: %w", authority, err)
	}
	return be, ok, nil
}

// ServeTCPBackend relays the opaque connection conn to an endpoint be's balancer picks
// (with its authority override, if any); name is for logs. A multicluster gateway serves
// the connections a transport header names a Service for with it.
func (rt *Router) ServeTCPBackend(ctx context.Context, conn net.Conn, be *forward.Backend, name string, src *metrics.TCP) {
	e, err := be.Balancer.Pick(ctx)
	if err != nil {
		rt.opts.Log.Debug("no endpoint for opaque connection", "dst", name, "error", err)
		conn.Close()
		return
	}
	rt.relay(ctx, conn, e, e.Addr, src)
}

// relay connects to target (the endpoint bep, nil for an original destination) and
// relays conn to it.
func (rt *Router) relay(ctx context.Context, conn net.Conn, bep *balance.Endpoint[*forward.Endpoint], target netip.AddrPort, src *metrics.TCP) {
	start := time.Now()
	if bep != nil {
		bep.Start()
	}
	var server net.Conn
	var err error
	if bep != nil && rt.opts.ConnectOpaque != nil {
		server, err = rt.opts.ConnectOpaque(ctx, target.String(), bep.Value.AuthorityOverride)
	} else {
		server, err = rt.opts.Connect(ctx, target.String())
	}
	connectRTT := time.Since(start)
	if bep != nil {
		bep.Done(time.Now(), connectRTT, balance.DefaultDecay)
	}
	if err != nil {
		rt.opts.Log.Debug("opaque connect failed", "dst", target, "error", err)
		conn.Close()
		return
	}
	dst := rt.opts.Metrics.TCP(dstLabels(target, server, rt.opts.TLSLabels))
	dst.Open()
	defer dst.Close()
	if bep != nil {
		// The connection counts as in flight on its endpoint while it lasts.
		bep.Start()
		defer func() { bep.Done(time.Now(), connectRTT, balance.DefaultDecay) }()
	}
	opaque.Relay(conn, server, src, dst)
}

var _ accept.TCPHandler = (*Router)(nil).ServeTCP
