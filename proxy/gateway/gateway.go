// Package gateway is the inbound proxy's multicluster gateway mode
// (LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES, set by the injector for
// config.linkerd.io/enable-gateway), as Linkerd's proxy has it.
//
// A client proxy in another cluster resolves a mirrored Service to the gateway's address
// with the gateway's identity and an authority override naming the Service in this
// cluster ("web.ns.svc.cluster.local:8080"). It connects to the gateway's inbound port
// itself over mesh TLS and names the Service in each HTTP request's authority, or, for an
// opaque connection, in the transport header. The gateway authorizes the client by the
// policy of its own inbound port (the Server the multicluster chart gives it), then
// forwards the request or connection as its outbound side would: through discovery, over
// mesh TLS to the Service's endpoints, so the Service's proxies see the gateway's
// identity.
//
// It fails closed: a name outside the suffixes, a name discovery does not know, and a
// name that resolves to another gateway (a mirror of a mirror, which could loop) are
// refused; the accept package refuses connections to the proxy itself without a verified
// client identity.
package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/inbound"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/outbound"
)

// Options configures a Gateway.
type Options struct {
	// Suffixes are the DNS suffixes (lower case, with a trailing dot, as
	// config.ParseSuffixes gives them) of the names the gateway forwards to; "." is every
	// name. Empty refuses everything.
	Suffixes []string
	// Inbound authorizes clients by the policy of the gateway's port.
	Inbound *inbound.Router
	// Outbound resolves the named Services and reaches their endpoints.
	Outbound *outbound.Router
	Log      *slog.Logger
}

// Gateway serves the connections accept marks as gateway connections
// (forward.ConnInfo.Gateway): Route is the forward.Router of their HTTP requests and
// ServeTCP serves their opaque streams.
type Gateway struct{ opts Options }

// New returns a gateway.
func New(opts Options) *Gateway {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Gateway{opts: opts}
}

// Target returns the normalized "name:port" authority names when the gateway may forward
// to it: a name with a port, in one of the suffixes. The error says why not otherwise.
func (g *Gateway) Target(authority string) (string, error) {
	host, port, err := net.SplitHostPort(authority)
	if err != nil || host == "" || port == "" {
		return "", &forward.RouteError{Status: http.StatusBadRequest,
			Reason: "gateway: the target " + quote(authority) + " is not name:port"}
	}
	name := strings.ToLower(strings.TrimSuffix(host, ".")) + "."
	for _, sfx := range g.opts.Suffixes {
		if sfx == "." || len(name) > len(sfx) && strings.HasSuffix(name, sfx) && name[len(name)-len(sfx)-1] == '.' {
			return strings.TrimSuffix(name, ".") + ":" + port, nil
		}
	}
	return "", &forward.RouteError{Status: http.StatusForbidden,
		Reason: "gateway: " + quote(host) + " is not in the gateway's suffixes"}
}

// quote bounds and quotes a client-given name for an error message.
func quote(s string) string {
	if len(s) > 255 {
		s = s[:255] + "..."
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}

// Route implements forward.Router: the request must be authorized by the gateway port's
// policy (404 or 403 otherwise, see inbound.Router.RequestMetrics) and name, in its
// authority (or the connection's transport header, when it had one), a Service the gateway forwards to (403 outside the suffixes, 400 without a
// port, 404 when discovery does not know it, 403 when it resolves to another gateway).
func (g *Gateway) Route(r *http.Request, ci *forward.ConnInfo) (*forward.Backend, error) {
	m, err := g.opts.Inbound.RequestMetrics(r, ci)
	if err != nil {
		return nil, err
	}
	setRequestMetrics(r, m) // Handler counts the request inbound on the authorized series
	name := r.Host
	if ci.GatewayTarget != "" {
		name = ci.GatewayTarget // a transport header with an HTTP session protocol named it
	}
	target, err := g.Target(name)
	if err != nil {
		return nil, err
	}
	return g.resolve(r.Context(), target)
}

// resolve returns the backend of target, refusing unknown names and other gateways.
func (g *Gateway) resolve(ctx context.Context, target string) (*forward.Backend, error) {
	be, ok, err := g.opts.Outbound.RouteName(ctx, target)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &forward.RouteError{Status: http.StatusNotFound,
			Reason: "gateway: no Service " + target + " in this cluster"}
	}
	for _, e := range be.Balancer.Endpoints() {
		if e.Value.AuthorityOverride != "" {
			return nil, &forward.RouteError{Status: http.StatusForbidden,
				Reason: "gateway: " + target + " resolves to another gateway; a gateway does not forward to a gateway"}
		}
	}
	return be, nil
}

// ServeTCP serves an opaque gateway connection: authorized by the gateway port's policy,
// it is relayed to an endpoint of the Service its transport header named; otherwise it
// is closed.
func (g *Gateway) ServeTCP(ctx context.Context, conn net.Conn, ci *forward.ConnInfo, src *metrics.TCP) {
	if !g.opts.Inbound.AuthorizeConn(ci) {
		g.opts.Log.Debug("gateway: refusing an unauthorized connection", "client", ci.Client, "client_id", ci.ClientID)
		conn.Close()
		return
	}
	if ci.GatewayTarget == "" {
		g.opts.Log.Debug("gateway: refusing an opaque connection that names no Service", "client", ci.Client, "client_id", ci.ClientID)
		conn.Close()
		return
	}
	target, err := g.Target(ci.GatewayTarget)
	if err == nil {
		var be *forward.Backend
		if be, err = g.resolve(ctx, target); err == nil {
			g.opts.Outbound.ServeTCPBackend(ctx, conn, be, target, src)
			return
		}
	}
	g.opts.Log.Info("gateway: refusing a connection", "client", ci.Client, "client_id", ci.ClientID, "target", ci.GatewayTarget, "error", err)
	conn.Close()
}
