package outbound

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/h1"
	"github.com/l5d-go/l5d/proxy/meshtls"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// dstLabels renders the labels of an outbound connection to target (peer="dst"): its
// address, and tls="true" with the server_id the server proved when conn is mesh TLS
// (meshtls.ServerID), plain otherwise.
func dstLabels(target netip.AddrPort, conn net.Conn, plain string) string {
	tls := plain
	if id := meshtls.ServerID(conn); id != "" {
		tls = metrics.Labels("tls", "true", "server_id", id)
	}
	return metrics.Join(metrics.Labels("direction", "outbound", "peer", "dst",
		"target_addr", target.String(), "target_ip", target.Addr().String()), tls)
}

// CountConnections returns connect with each connection it opens counted in reg's
// transport metrics (tcp_open_total, tcp_read_bytes_total, ...) as Linkerd's proxy
// counts its connections to endpoints: direction="outbound",peer="dst", the target, and
// tls="true" with the server_id when the connection is mesh TLS, plain (the tls labels of
// a connection without it) otherwise. It is meant for the connections HTTP requests are
// forwarded on; opaque connections are counted where they are relayed. A connection
// whose socket waits for input without a buffer (h1.IdleReader) still does.
func CountConnections(connect forward.ConnectFunc, reg *metrics.Registry, plain string) forward.ConnectFunc {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := connect(ctx, addr)
		if err != nil {
			return nil, err
		}
		target, perr := netip.ParseAddrPort(addr)
		if perr != nil {
			return c, nil // not an endpoint address: nothing to label it with
		}
		m := reg.TCP(dstLabels(target, c, plain))
		m.Open()
		cc := &countedConn{Conn: c, m: m}
		if ir, ok := c.(h1.IdleReader); ok {
			return &countedIdleConn{countedConn: cc, idle: ir}, nil
		}
		return cc, nil
	}
}

// countedConn counts the bytes of a connection and closes its metrics once.
type countedConn struct {
	net.Conn
	m      *metrics.TCP
	closed atomic.Bool
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.m.Read(n)
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.m.Wrote(n)
	return n, err
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.m.Close()
	}
	return c.Conn.Close()
}

// NetConn returns the connection underneath, for half-closes (see opaque.Relay).
func (c *countedConn) NetConn() net.Conn { return c.Conn }

// countedIdleConn is a countedConn over an h1.IdleReader, which it stays.
type countedIdleConn struct {
	*countedConn
	idle h1.IdleReader
}

// ReadWith implements h1.IdleReader.
func (c *countedIdleConn) ReadWith(get func() []byte, put func([]byte)) ([]byte, int, error) {
	buf, n, err := c.idle.ReadWith(get, put)
	c.m.Read(n)
	return buf, n, err
}
