package forward

import (
	"context"
	"net/netip"
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
