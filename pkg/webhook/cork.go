package webhook

import (
	"context"
	"crypto/tls"
	"net"
)

// An answer larger than net/http's 4 KB connection buffer leaves the handler in two writes
// (the buffer with the headers, then the rest), two TLS records the API server is woken
// for one after the other. Where the system allows (cork_linux.go), the connection is
// corked for the handler's write, so the answer reaches the API server in one piece.

// corkAbove is the answer size from which the handler writes to the connection itself.
const corkAbove = 3 << 10

type connKey struct{}

// withConn is the server's ConnContext: it keeps the connection in the request context.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// tcpConn returns the TCP connection under ctx's connection, or nil.
func tcpConn(ctx context.Context) *net.TCPConn {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tcp, _ := c.(*net.TCPConn)
	return tcp
}
