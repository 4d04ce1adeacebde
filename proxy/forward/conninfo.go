package forward

import (
	"context"
	"net/http"
	"net/netip"
	"sync/atomic"

	"github.com/l5d-go/l5d/proxy/h1"
)

// ConnInfo describes the accepted connection a request arrived on. The listener creates
// it once per connection.
type ConnInfo struct {
	// Direction is "inbound" or "outbound", the metrics label.
	Direction string
	// OrigDst is the address the client connected to before redirection.
	OrigDst netip.AddrPort
	// Client is the peer's address.
	Client netip.AddrPort
	// TLS reports that the connection arrived over mesh TLS (inbound side).
	TLS bool
	// ClientID is the client's verified mesh identity on a TLS connection, "" otherwise.
	ClientID string
	// Gateway marks a connection a client proxy addressed to this proxy itself as a
	// multicluster gateway (inbound side, see package gateway); GatewayTarget is then the
	// "name:port" its transport header named, "" when each HTTP request names its own.
	Gateway       bool
	GatewayTarget string

	// clientIDValues is the l5d-client-id field value of the connection's requests,
	// made once (see setClientID).
	clientIDValues atomic.Pointer[[]string]
	// routed is the backend the HTTP/1 fast path chose for the request it handed to the
	// general handler, which takes it instead of routing that request again (see
	// Handler.route). Only the connection's own goroutines touch it, one after the other.
	routed *Backend
}

// Header fields the inbound side owns: l5d-client-id is set from the connection's
// verified identity and l5d-dst-override only means something to an outbound proxy, so a
// client's own values never reach the application.
const (
	HeaderClientID    = "L5d-Client-Id"
	headerDstOverride = "L5d-Dst-Override"
)

// inbound reports whether ci is a connection to the inbound side.
func (ci *ConnInfo) inbound() bool { return ci != nil && ci.Direction == "inbound" }

// setClientID replaces the client's l5d-client-id and l5d-dst-override fields of an
// inbound request with l5d-client-id naming the connection's verified mesh identity, if
// it has one. It allocates nothing when the client sent neither field, beyond the first
// request of a mesh TLS connection.
func (ci *ConnInfo) setClientID(h http.Header) {
	delete(h, HeaderClientID)
	delete(h, headerDstOverride)
	if ci.ClientID == "" {
		return
	}
	v := ci.clientIDValues.Load()
	if v == nil {
		vv := []string{ci.ClientID}
		v = &vv
		ci.clientIDValues.Store(v)
	}
	h[HeaderClientID] = (*v)[:1:1]
}

// inboundOwned reports whether a field named name is one setClientID replaces.
func inboundOwned(name []byte) bool {
	switch len(name) {
	case len(HeaderClientID):
		return h1.EqualFold(name, "l5d-client-id")
	case len(headerDstOverride):
		return h1.EqualFold(name, "l5d-dst-override")
	}
	return false
}

type connInfoKey struct{}

// WithConnInfo returns ctx carrying ci.
func WithConnInfo(ctx context.Context, ci *ConnInfo) context.Context {
	return context.WithValue(ctx, connInfoKey{}, ci)
}

// ConnInfoFrom returns the ConnInfo in ctx, or nil.
func ConnInfoFrom(ctx context.Context) *ConnInfo {
	ci, _ := ctx.Value(connInfoKey{}).(*ConnInfo)
	return ci
}
