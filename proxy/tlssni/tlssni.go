// Package tlssni reads the server name (SNI) a TLS client asks for from the start of a
// connection without consuming it: crypto/tls parses the ClientHello from a recording
// of what it reads, the handshake is abandoned there, and the connection it returns
// replays the recorded bytes before reading on, so the hello reaches the server intact.
package tlssni

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// errGotHello stops the handshake once the ClientHello is parsed.
var errGotHello = errors.New("ClientHello read")

// Peek reads conn's TLS ClientHello, waiting at most timeout, and returns its server name
// ("" when the client sent none) and a connection that yields every byte conn has sent,
// the hello included. Nothing is written to conn. It fails when the start of conn is not
// a TLS ClientHello; the returned connection replays what was read in every case.
func Peek(conn net.Conn, timeout time.Duration) (sni string, replay net.Conn, err error) {
	rec := &recorder{Conn: conn}
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni = h.ServerName
		return nil, errGotHello
	}}
	conn.SetReadDeadline(time.Now().Add(timeout))
	herr := tls.Server(rec, cfg).Handshake()
	conn.SetReadDeadline(time.Time{})
	replay = Replay(conn, rec.recorded)
	if !errors.Is(herr, errGotHello) {
		return "", replay, fmt.Errorf("reading a TLS ClientHello: %w", herr)
	}
	return sni, replay, nil
}

// recorder records what crypto/tls reads and drops what it writes (an alert).
type recorder struct {
	net.Conn
	recorded []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.recorded = append(r.recorded, p[:n]...)
	return n, err
}

func (r *recorder) Write(p []byte) (int, error) { return len(p), nil }

// Replay returns conn reading pending first: the bytes a peek consumed from it. Half-closes
// (CloseWrite) pass through to conn for opaque relays.
func Replay(conn net.Conn, pending []byte) net.Conn { return &replayConn{Conn: conn, pending: pending} }

// replayConn returns pending bytes before reading from Conn.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite passes half-closes on for opaque relays.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
