package forward

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/l5d-go/l5d/proxy/h2"
	"github.com/l5d-go/l5d/proxy/internal/tcpconnect"
	"github.com/l5d-go/l5d/proxy/rawsock"
)

// ConnectFunc opens a transport connection to an endpoint address ("ip:port"). It is the
// seam for the TLS layer between proxies: the identity layer wraps it.
type ConnectFunc func(ctx context.Context, addr string) (net.Conn, error)

// ConnectError is a failure to establish a connection to an endpoint (502).
type ConnectError struct {
	Addr string
	Err  error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("connecting to %s: %v", e.Addr, e.Err) }
func (e *ConnectError) Unwrap() error { return e.Err }

// TCPConnector returns a ConnectFunc dialling plain TCP with a connect timeout and a TCP
// keepalive period (0 disables keepalive probes). The timeout fails only connections the
// kernel has not established when it passes (tcpconnect), not those the proxy, slowed
// down, looks at late.
func TCPConnector(timeout, keepalive time.Duration) ConnectFunc {
	d := &tcpconnect.Dialer{Timeout: timeout, KeepAlive: keepalive}
	if keepalive == 0 {
		d.KeepAlive = -1
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, addr)
		if err != nil {
			return nil, &ConnectError{Addr: addr, Err: err}
		}
		return rawsock.Wrap(c), nil
	}
}

// ClientOptions configures Clients.
type ClientOptions struct {
	// Connect opens connections; required.
	Connect ConnectFunc
	// IdleTimeout closes pooled connections unused for this long (default 30s).
	IdleTimeout time.Duration
	// MaxIdlePerEndpoint bounds idle HTTP/1 connections kept per endpoint (default 128).
	MaxIdlePerEndpoint int
	// Tag, when set, returns what Connect would currently do differently for an address
	// (the TLS identity it would require): shared HTTP/2 connections are pooled per
	// address and tag, so one opened in plaintext is not reused once the address has an
	// identity. HTTP/1 pools are per Endpoint, which discovery replaces when its identity
	// changes.
	Tag func(addr string) string
}

// Clients holds the connection pools to endpoints: HTTP/1 keep-alive pools (one per
// Endpoint, see connPool) share its settings, and HTTP/2 (prior knowledge) connections
// are shared per endpoint address. Safe for concurrent use.
type Clients struct {
	h2          *h2.Transport
	connect     ConnectFunc
	idleTimeout time.Duration
	maxIdle     int
}

// NewClients returns connection pools using opts.
func NewClients(opts ClientOptions) *Clients {
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = 30 * time.Second
	}
	perHost := opts.MaxIdlePerEndpoint
	if perHost <= 0 {
		perHost = 128
	}
	// Between proxies every request shares one HTTP/2 connection per endpoint; the lean
	// transport batches their frames into shared writes.
	h2t := &h2.Transport{Connect: opts.Connect, Tag: opts.Tag}
	return &Clients{h2: h2t, connect: opts.Connect, idleTimeout: idle, maxIdle: perHost}
}

// Close closes idle HTTP/2 connections; in-flight requests finish. Idle HTTP/1
// connections close after the idle timeout.
func (c *Clients) Close() {
	c.h2.CloseIdleConnections()
}
