// Package inbound routes traffic arriving for the application: every connection goes to
// the application on loopback at its original destination port, HTTP requests through the
// HTTP layer (for metrics and HTTP/1 restoration) and everything else as opaque TCP.
package inbound

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/inpolicy"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/opaque"
)

// Options configures a Router.
type Options struct {
	// AppAddr is the application's address; its port is replaced by each connection's
	// original destination port. Default 127.0.0.1.
	AppAddr netip.Addr
	// Metrics records inbound traffic.
	Metrics *metrics.Registry
	// Balancer configures the per-port queue.
	Balancer balance.Options
	// TLSLabels renders the tls labels of incoming traffic that is not mesh TLS; mesh TLS
	// connections are labelled tls="true" with their client_id.
	TLSLabels string
	// Connect opens connections to the application.
	Connect forward.ConnectFunc
	// MaxAuthorities bounds distinct authority label values per port (default 100).
	MaxAuthorities int
	// Policy returns the authorization policy of an inbound port; nil admits everything.
	Policy func(port uint16) *inpolicy.Port
	// PolicyKnown, when set, waits (for a bounded time) until the policy of a port is
	// known and reports whether it is; see Admit.
	PolicyKnown func(port uint16) bool
	// RequireIdentity and RequireTLS, when set, report whether a port only serves mesh
	// TLS connections with a verified client identity, or mesh TLS connections at all
	// (LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY and _REQUIRE_TLS); see Admit.
	RequireIdentity, RequireTLS func(port uint16) bool
	Log                         *slog.Logger
}

// Router implements forward.Router for inbound traffic and serves opaque connections.
type Router struct {
	opts  Options
	authz sync.Map // authzKey or rateLimitKey -> *atomic.Uint64
	// authzKeys counts authz entries; policy updates bring new keys, so the map is
	// cleared when it grows large (the counters stay in the registry).
	authzKeys atomic.Int64

	mu     sync.RWMutex
	byPort map[routeKey]*portRoute
}

// routeKey is what an inbound backend (and its metric labels) depends on: the port,
// the client, and the Server and route of the port's policy that took the request
// (names, not pointers, so a policy update with the same routes keeps the backends).
type routeKey struct {
	port     uint16
	tls      bool
	clientID string
	srv      srvRoute
}

// srvRoute names a policy's Server and route in the srv_* and route_* labels Linkerd
// puts on inbound HTTP metrics; zero without a policy.
type srvRoute struct{ srvKind, srvName, routeGroup, routeKind, routeName string }

func (s srvRoute) labels() string {
	if s == (srvRoute{}) {
		return ""
	}
	return metrics.Labels("srv_kind", s.srvKind, "srv_name", s.srvName,
		"route_group", s.routeGroup, "route_kind", s.routeKind, "route_name", s.routeName)
}

// tlsLabels renders the tls labels of a connection.
func (rt *Router) tlsLabels(ci *forward.ConnInfo) string {
	if ci.TLS {
		return metrics.Labels("tls", "true", "client_id", ci.ClientID)
	}
	return rt.opts.TLSLabels
}

// NewRouter returns an inbound router.
func NewRouter(opts Options) *Router {
	if !opts.AppAddr.IsValid() {
		opts.AppAddr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if opts.MaxAuthorities <= 0 {
		opts.MaxAuthorities = 100
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Router{opts: opts, byPort: map[routeKey]*portRoute{}}
}

// Target returns where a connection originally sent to dst is delivered.
func (rt *Router) Target(dst netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(rt.opts.AppAddr, dst.Port())
}

// Admit reports whether the connection ci (its original destination known) may be
// served. A port that requires identity refuses connections without mesh TLS or without
// a verified client identity, a port that requires TLS those without mesh TLS: they are
// counted in inbound_tcp_errors_total{error="unauthorized"}, as Linkerd counts
// connections it refuses, and closed. Then, with PolicyKnown set, a connection is only
// served once the policy of its port is known (it waits for it, for a bounded time), so
// that no connection is served before its port's authorizations are. It is meant for
// accept.Server.Admit.
func (rt *Router) Admit(ci *forward.ConnInfo) bool {
	port := ci.OrigDst.Port()
	if why := rt.requirement(ci, port); why != "" {
		rt.opts.Metrics.Counter("inbound_tcp_errors_total",
			"Inbound TCP connections that could not be processed due to a proxy error.",
			metrics.Labels("target_addr", ci.OrigDst.String(), "error", "unauthorized")).Add(1)
		rt.opts.Log.Debug("refusing a connection", "client", ci.Client, "port", port, "error", why)
		return false
	}
	if rt.opts.PolicyKnown == nil || rt.opts.PolicyKnown(port) {
		return true
	}
	rt.opts.Log.Debug("refusing a connection: the port's policy is unknown", "port", port)
	return false
}

// requirement returns why ci does not meet its port's TLS or identity requirement, or "".
func (rt *Router) requirement(ci *forward.ConnInfo, port uint16) string {
	switch {
	case rt.opts.RequireIdentity != nil && rt.opts.RequireIdentity(port):
		if !ci.TLS {
			return "identity required: the connection is not mesh TLS"
		}
		if ci.ClientID == "" {
			return "identity required: the client presented no mesh identity"
		}
	case rt.opts.RequireTLS != nil && rt.opts.RequireTLS(port):
		if !ci.TLS {
			return "TLS required: the connection is not mesh TLS"
		}
	}
	return ""
}

// OpaqueFallback reports whether a connection to dst that does not speak HTTP may be
// served as opaque TCP: the policy of its port allows it (see inpolicy.Port.OpaqueFallback).
// It is meant for accept.Server.OpaqueFallback.
func (rt *Router) OpaqueFallback(dst netip.AddrPort) bool {
	return rt.opts.Policy == nil || rt.opts.Policy(dst.Port()).OpaqueFallback()
}

// authzKey identifies an authorization decision's counter.
type authzKey struct {
	http, allowed bool
	target        netip.AddrPort
	srv           *inpolicy.Port
	route         *inpolicy.Route
	authz         *inpolicy.Authz
}

// maxAuthzKeys bounds the cached authorization counters.
const maxAuthzKeys = 10000

// count adds one to the counter of a decision in inbound_{http,tcp}_authz_{allow,deny}_total.
func (rt *Router) count(k authzKey) {
	c, found := rt.authz.Load(k)
	if !found {
		proto, verdict := "tcp", "deny"
		if k.http {
			proto = "http"
		}
		labels := metrics.Join(targetLabels(k.target), metrics.Labels("srv_kind", k.srv.ServerKind, "srv_name", k.srv.Server))
		if k.route != nil {
			labels = metrics.Join(labels, metrics.Labels("route_group", k.route.Group, "route_kind", k.route.Kind, "route_name", k.route.Name))
		}
		if !k.allowed && k.srv.Audit {
			labels = metrics.Join(labels, metrics.Labels("mode", "audit"))
		}
		if k.allowed {
			verdict = "allow"
			labels = metrics.Join(labels, metrics.Labels("authz_kind", k.authz.Kind, "authz_name", k.authz.Name))
		}
		name := "inbound_" + proto + "_authz_" + verdict + "_total"
		if rt.authzKeys.Add(1) > maxAuthzKeys {
			rt.authz.Clear()
			rt.authzKeys.Store(1)
		}
		c, _ = rt.authz.LoadOrStore(k, rt.opts.Metrics.Counter(name, "Inbound "+proto+" authorization decisions ("+verdict+").", labels))
	}
	c.(*atomic.Uint64).Add(1)
}

// authorize checks the opaque connection ci against its port's policy and counts the
// decision.
func (rt *Router) authorize(ci *forward.ConnInfo) (*inpolicy.Port, bool) {
	if rt.opts.Policy == nil {
		return nil, true
	}
	p := rt.opts.Policy(ci.OrigDst.Port())
	a, ok := p.Allow(ci.Client.Addr(), ci.ClientID)
	rt.count(authzKey{allowed: ok, target: ci.OrigDst, srv: p, authz: a})
	if !ok && p.Audit {
		rt.opts.Log.Info("audit: an unauthorized client was let through", "client", ci.Client, "client_id", ci.ClientID, "port", ci.OrigDst.Port())
		return p, true
	}
	return p, ok
}

// authorizeRequest matches r to a route of its port's policy and checks the client
// against that route's authorizations: no route is a 404, a refusal a 403 (gRPC:
// PERMISSION_DENIED); then takes a token from the Server's rate limit: none left is a
// 429 (gRPC: RESOURCE_EXHAUSTED). It returns the Server and route that took the request.
func (rt *Router) authorizeRequest(r *http.Request, ci *forward.ConnInfo) (srvRoute, error) {
	if rt.opts.Policy == nil {
		return srvRoute{}, nil
	}
	p := rt.opts.Policy(ci.OrigDst.Port())
	route, ok := p.Match(r)
	if !ok {
		return srvRoute{}, &forward.RouteError{Status: http.StatusNotFound, GRPCCode: grpcNotFound, Reason: "no route found for request"}
	}
	sr := srvRoute{srvKind: p.ServerKind, srvName: p.Server, routeGroup: route.Group, routeKind: route.Kind, routeName: route.Name}
	a, ok := route.Allow(ci.Client.Addr(), ci.ClientID)
	rt.count(authzKey{http: true, allowed: ok, target: ci.OrigDst, srv: p, route: route, authz: a})
	if !ok {
		if !p.Audit {
			return sr, &forward.RouteError{Status: http.StatusForbidden, GRPCCode: grpcPermissionDenied,
				Reason: "unauthorized request on route " + route.Name + " of server " + p.Server}
		}
		rt.opts.Log.Info("audit: an unauthorized request was let through", "client", ci.Client, "client_id", ci.ClientID, "port", ci.OrigDst.Port(), "route", route.Name)
	}
	if l := p.RateLimit; l != nil {
		if scope, ok := l.Allow(ci.ClientID, time.Now()); !ok {
			rt.countRateLimited(ci, p, scope)
			return sr, &forward.RouteError{Status: http.StatusTooManyRequests, GRPCCode: grpcResourceExhausted,
				Reason: l.Describe(scope, ci.ClientID)}
		}
	}
	return sr, nil
}

// gRPC status codes of refused requests.
const (
	grpcNotFound          = 5
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
)

// rateLimitKey identifies a counter of inbound_http_local_ratelimit_total.
type rateLimitKey struct {
	target   netip.AddrPort
	srv      *inpolicy.Port
	scope    string
	tls      bool
	clientID string
}

// countRateLimited adds one to inbound_http_local_ratelimit_total, labelled as Linkerd's
// proxy labels it: the target, the Server, the policy (ratelimit_group, _kind, _name),
// the scope of the limit (total or identity) and the connection's tls labels.
func (rt *Router) countRateLimited(ci *forward.ConnInfo, p *inpolicy.Port, scope string) {
	k := rateLimitKey{target: ci.OrigDst, srv: p, scope: scope, tls: ci.TLS, clientID: ci.ClientID}
	c, found := rt.authz.Load(k)
	if !found {
		l := p.RateLimit
		labels := metrics.Join(targetLabels(k.target), metrics.Labels("srv_kind", p.ServerKind, "srv_name", p.Server,
			"ratelimit_group", l.Group, "ratelimit_kind", l.Kind, "ratelimit_name", l.Name, "ratelimit_scope", scope), rt.tlsLabels(ci))
		if rt.authzKeys.Add(1) > maxAuthzKeys {
			rt.authz.Clear()
			rt.authzKeys.Store(1)
		}
		c, _ = rt.authz.LoadOrStore(k, rt.opts.Metrics.Counter("inbound_http_local_ratelimit_total",
			"Inbound HTTP requests refused by the Server's local rate limit.", labels))
	}
	c.(*atomic.Uint64).Add(1)
}

// RoutesOnHeaders implements forward.HeaderRouter: the policy of the connection's port
// matches routes on header fields or query parameters.
func (rt *Router) RoutesOnHeaders(ci *forward.ConnInfo) bool {
	return rt.opts.Policy != nil && rt.opts.Policy(ci.OrigDst.Port()).NeedsHeaders()
}

// Route returns the backend for the request's original destination port, after checking
// that the request has a route (404 otherwise) whose authorizations admit the client (403
// otherwise; gRPC requests get grpc-status PERMISSION_DENIED) and that the Server's rate
// limit, if any, has room for it (429 otherwise, gRPC RESOURCE_EXHAUSTED, counted in
// inbound_http_local_ratelimit_total). Its metrics carry the
// Server's and the route's labels (srv_kind, srv_name, route_group, route_kind,
// route_name), as Linkerd's do, and target_port.
func (rt *Router) Route(r *http.Request, ci *forward.ConnInfo) (*forward.Backend, error) {
	pr, err := rt.route(r, ci)
	if err != nil {
		return nil, err
	}
	return pr.be, nil
}

// RequestMetrics checks r, arriving on ci, against the policy of ci's port as Route does
// (a *forward.RouteError: 404 without a route, 403 when refused), counts the decision,
// and returns the series Route's backend records r on (its authority, target, Server and
// route, and the client's tls labels): the multicluster gateway, which forwards the
// requests elsewhere, authorizes them and counts them inbound with it.
func (rt *Router) RequestMetrics(r *http.Request, ci *forward.ConnInfo) (*metrics.HTTP, error) {
	pr, err := rt.route(r, ci)
	if err != nil {
		return nil, err
	}
	return pr.am.For(r.Host), nil
}

// portRoute is the backend of a routeKey and the metrics its endpoint records on.
type portRoute struct {
	be *forward.Backend
	am *forward.AuthorityMetrics
}

func (rt *Router) route(r *http.Request, ci *forward.ConnInfo) (*portRoute, error) {
	sr, err := rt.authorizeRequest(r, ci)
	if err != nil {
		return nil, err
	}
	key := routeKey{port: ci.OrigDst.Port(), tls: ci.TLS, clientID: ci.ClientID, srv: sr}
	rt.mu.RLock()
	pr := rt.byPort[key]
	rt.mu.RUnlock()
	if pr != nil {
		return pr, nil
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if pr = rt.byPort[key]; pr != nil {
		return pr, nil
	}
	if len(rt.byPort) >= 10000 {
		clear(rt.byPort) // bound memory when very many client identities connect
	}
	tlsLabels := rt.tlsLabels(ci)
	target := rt.Target(ci.OrigDst)
	// target_addr is the address the client dialled, as Linkerd reports it.
	dstLabels := targetLabels(ci.OrigDst)
	srvLabels := sr.labels()
	am := forward.NewAuthorityMetrics(rt.opts.Metrics, rt.opts.MaxAuthorities, func(authority string) string {
		return metrics.Join(metrics.Labels("direction", "inbound", "authority", authority), dstLabels, srvLabels, tlsLabels)
	})
	bal := balance.New[*forward.Endpoint](rt.opts.Balancer)
	bal.Set([]*balance.Endpoint[*forward.Endpoint]{balance.NewEndpoint(target, forward.NewEndpointByAuthority(target, am))})
	pr = &portRoute{be: &forward.Backend{Name: target.String(), Balancer: bal}, am: am}
	rt.byPort[key] = pr
	return pr, nil
}

// ErrorMetrics implements forward.ErrorMetricsRouter: the responses the proxy answers
// itself on a connection (403 refusals, 404 without a route, errors reaching the
// application) are counted with the connection's target and tls labels, so a refused
// mesh client is counted under its client_id.
func (rt *Router) ErrorMetrics(ci *forward.ConnInfo) *metrics.HTTP {
	return rt.opts.Metrics.HTTP(metrics.Join(metrics.Labels("direction", "inbound"), targetLabels(ci.OrigDst), rt.tlsLabels(ci)))
}

// targetLabels renders the target_addr, target_ip and target_port labels of inbound HTTP
// and authorization metrics: dst is the address the client dialled.
func targetLabels(dst netip.AddrPort) string {
	return metrics.Labels("target_addr", dst.String(), "target_ip", dst.Addr().String(),
		"target_port", strconv.Itoa(int(dst.Port())))
}

// ServeTCP relays an opaque connection to the application.
func (rt *Router) ServeTCP(ctx context.Context, conn net.Conn, ci *forward.ConnInfo, src *metrics.TCP) {
	if p, ok := rt.authorize(ci); !ok {
		rt.opts.Log.Debug("refusing an unauthorized connection", "client", ci.Client, "client_id", ci.ClientID, "server", p.Server)
		conn.Close()
		return
	}
	target := rt.Target(ci.OrigDst)
	server, err := rt.opts.Connect(ctx, target.String())
	if err != nil {
		rt.opts.Log.Debug("connecting to the application failed", "target", target, "error", err)
		conn.Close()
		return
	}
	dst := rt.opts.Metrics.TCP(metrics.Join(metrics.Labels("direction", "inbound", "peer", "dst",
		"target_addr", target.String(), "target_ip", target.Addr().String()), rt.tlsLabels(ci)))
	dst.Open()
	defer dst.Close()
	opaque.Relay(conn, server, src, dst)
}

// AuthorizeConn checks the opaque connection ci against its port's policy as ServeTCP
// does and counts the decision: the multicluster gateway authorizes the connections it
// forwards with it.
func (rt *Router) AuthorizeConn(ci *forward.ConnInfo) bool {
	_, ok := rt.authorize(ci)
	return ok
}
