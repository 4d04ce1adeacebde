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
	"sync"
	"sync/atomic"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/opaque"
	"github.com/l5d-go/l5d/proxy/policy"
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
	Policy func(port uint16) *policy.Port
	Log    *slog.Logger
}

// Router implements forward.Router for inbound traffic and serves opaque connections.
type Router struct {
	opts  Options
	authz sync.Map // authzKey -> *atomic.Uint64

	mu     sync.RWMutex
	byPort map[routeKey]*forward.Backend
}

// routeKey is what an inbound backend (and its metric labels) depends on.
type routeKey struct {
	port     uint16
	tls      bool
	clientID string
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
	return &Router{opts: opts, byPort: map[routeKey]*forward.Backend{}}
}

// Target returns where a connection originally sent to dst is delivered.
func (rt *Router) Target(dst netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(rt.opts.AppAddr, dst.Port())
}

// authzKey identifies an authorization decision's counter.
type authzKey struct {
	http, allowed bool
	srv           *policy.Port
	authz         *policy.Authz
}

// authorize checks the connection ci against its port's policy and counts the decision
// in inbound_{http,tcp}_authz_{allow,deny}_total.
func (rt *Router) authorize(ci *forward.ConnInfo, http bool) (*policy.Port, bool) {
	if rt.opts.Policy == nil {
		return nil, true
	}
	p := rt.opts.Policy(ci.OrigDst.Port())
	a, ok := p.Allow(ci.Client.Addr(), ci.ClientID)
	k := authzKey{http: http, allowed: ok, srv: p, authz: a}
	c, found := rt.authz.Load(k)
	if !found {
		proto, verdict := "tcp", "deny"
		if http {
			proto = "http"
		}
		labels := metrics.Labels("srv_kind", p.ServerKind, "srv_name", p.Server)
		if !ok && p.Audit {
			labels = metrics.Join(labels, metrics.Labels("mode", "audit"))
		}
		if ok {
			verdict = "allow"
			labels = metrics.Join(labels, metrics.Labels("authz_kind", a.Kind, "authz_name", a.Name))
		}
		name := "inbound_" + proto + "_authz_" + verdict + "_total"
		c, _ = rt.authz.LoadOrStore(k, rt.opts.Metrics.Counter(name, "Inbound "+proto+" authorization decisions ("+verdict+").", labels))
	}
	c.(*atomic.Uint64).Add(1)
	if !ok && p.Audit {
		rt.opts.Log.Info("audit: an unauthorized client was let through", "client", ci.Client, "client_id", ci.ClientID, "port", ci.OrigDst.Port())
		return p, true
	}
	return p, ok
}

// Route returns the backend for the request's original destination port, after checking
// that the client is authorized (403 otherwise).
func (rt *Router) Route(_ *http.Request, ci *forward.ConnInfo) (*forward.Backend, error) {
	if p, ok := rt.authorize(ci, true); !ok {
		return nil, &forward.RouteError{Status: http.StatusForbidden, Reason: "unauthorized request on server " + p.Server}
	}
	key := routeKey{port: ci.OrigDst.Port(), tls: ci.TLS, clientID: ci.ClientID}
	rt.mu.RLock()
	be := rt.byPort[key]
	rt.mu.RUnlock()
	if be != nil {
		return be, nil
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if be = rt.byPort[key]; be != nil {
		return be, nil
	}
	if len(rt.byPort) >= 10000 {
		clear(rt.byPort) // bound memory when very many client identities connect
	}
	tlsLabels := rt.tlsLabels(ci)
	target := rt.Target(ci.OrigDst)
	// target_addr is the address the client dialled, as Linkerd reports it.
	dstLabels := metrics.Labels("target_addr", ci.OrigDst.String(), "target_ip", ci.OrigDst.Addr().String())
	am := forward.NewAuthorityMetrics(rt.opts.Metrics, rt.opts.MaxAuthorities, func(authority string) string {
		return metrics.Join(metrics.Labels("direction", "inbound", "authority", authority), dstLabels, tlsLabels)
	})
	bal := balance.New[*forward.Endpoint](rt.opts.Balancer)
	bal.Set([]*balance.Endpoint[*forward.Endpoint]{balance.NewEndpoint(target, forward.NewEndpointByAuthority(target, am))})
	be = &forward.Backend{Name: target.String(), Balancer: bal}
	rt.byPort[key] = be
	return be, nil
}

// ServeTCP relays an opaque connection to the application.
func (rt *Router) ServeTCP(ctx context.Context, conn net.Conn, ci *forward.ConnInfo, src *metrics.TCP) {
	if p, ok := rt.authorize(ci, false); !ok {
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
