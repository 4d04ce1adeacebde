package meshtls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/l5d-go/l5d/proxy/tlssni"
	"github.com/l5d-go/l5d/proxy/transportheader"
)

// Kind is what an inbound connection turned out to be.
type Kind int

// Kinds of inbound connections.
const (
	// Plain is not TLS: detection and forwarding continue on the connection as it is.
	Plain Kind = iota
	// Terminated is mesh TLS for this proxy, now decrypted.
	Terminated
	// Passthrough is TLS for another name: relayed to the application untouched.
	Passthrough
)

// Accepted is the outcome of Terminator.Accept.
type Accepted struct {
	Kind Kind
	// Conn carries the connection's bytes from the start (Plain, Passthrough) or the
	// decrypted stream (Terminated).
	Conn net.Conn
	// ClientID is the verified identity of a Terminated connection's client, "" when the
	// client presented no certificate.
	ClientID string
	// SNI is the server name a TLS client asked for.
	SNI string
	// ALPN is the application protocol negotiated on a Terminated connection;
	// transportheader.ALPN means a transport header comes first.
	ALPN string
}

// Terminator recognises and terminates inbound mesh TLS.
type Terminator struct {
	creds Credentials
	cfg   *tls.Config
	// transport is cfg selecting the opaque transport's ALPN protocol, for clients that
	// offer it; h2 is cfg selecting "h2", for clients that offer that (gRPC clients of the
	// control plane insist on it); other clients get no ALPN, whatever they offer.
	transport, h2 *tls.Config
}

// NewTerminator returns a terminator for the proxy's credentials.
func NewTerminator(creds Credentials) *Terminator {
	t := &Terminator{creds: creds, cfg: ServerConfig(creds), transport: ServerConfig(creds), h2: ServerConfig(creds)}
	t.transport.NextProtos = []string{transportheader.ALPN}
	t.h2.NextProtos = []string{"h2"}
	return t
}

// Accept reads the start of conn within timeout. A TLS ClientHello whose SNI is the
// proxy's identity is answered with a handshake; any other TLS is handed back untouched
// (nothing is written to the client), as is anything that is not TLS, including a client
// that sends nothing within timeout (a server-speaks-first protocol). An error means the
// connection is unusable (it has not been closed).
func (t *Terminator) Accept(conn net.Conn, timeout time.Duration) (Accepted, error) {
	if timeout > 0 {
		// Bounds the handshake's writes too, against a client that does not read.
		conn.SetDeadline(time.Now().Add(timeout))
		defer conn.SetDeadline(time.Time{})
	}
	var first [1]byte
	n, err := conn.Read(first[:])
	if ne, ok := err.(net.Error); n == 0 && ok && ne.Timeout() {
		// The client waits for the server to speak first: not TLS.
		return Accepted{Kind: Plain, Conn: conn}, nil
	}
	if n == 0 {
		if err == nil {
			err = errors.New("empty read")
		}
		return Accepted{}, fmt.Errorf("reading the first byte: %w", err)
	}
	// 0x16 is a TLS handshake record.
	if first[0] != 0x16 {
		return Accepted{Kind: Plain, Conn: tlssni.Replay(conn, []byte{first[0]})}, nil
	}
	sc := &sniffConn{Conn: conn, pending: []byte{first[0]}, recorded: []byte{first[0]}}
	var sni string
	var mine bool
	cfg := t.cfg.Clone()
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni = h.ServerName
		sc.mu.Lock()
		defer sc.mu.Unlock()
		if sni != "" && sni == t.creds.Name() {
			mine = true
			sc.recorded = nil
			if slices.Contains(h.SupportedProtos, transportheader.ALPN) {
				return t.transport, nil
			}
			if slices.Contains(h.SupportedProtos, "h2") {
				return t.h2, nil
			}
			return nil, nil
		}
		sc.drop = true
		return nil, errPassthrough
	}
	out := &coalescer{Conn: sc}
	tc := tls.Server(out, cfg)
	err = tc.Handshake()
	if !mine {
		if sc.drop {
			return Accepted{Kind: Passthrough, SNI: sni, Conn: tlssni.Replay(conn, sc.recorded)}, nil
		}
		return Accepted{}, fmt.Errorf("reading a TLS ClientHello: %w", err)
	}
	if err != nil {
		return Accepted{}, fmt.Errorf("mesh TLS handshake: %w", err)
	}
	cs := tc.ConnectionState()
	var client string
	if len(cs.PeerCertificates) > 0 {
		client = PeerIdentity(cs.PeerCertificates[0])
	}
	return Accepted{Kind: Terminated, Conn: newMeshConn(tc, out), ClientID: client, SNI: sni, ALPN: cs.NegotiatedProtocol}, nil
}

var errPassthrough = errors.New("TLS for another server name")

// sniffConn feeds crypto/tls while recording what it reads, so that a ClientHello for
// another name can be replayed (recording stops once the hello is for this proxy), and drops writes (the alert) once passthrough is decided.
type sniffConn struct {
	net.Conn
	mu       sync.Mutex
	pending  []byte
	recorded []byte
	drop     bool
}

func (c *sniffConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if c.recorded != nil {
		c.recorded = append(c.recorded, p[:n]...)
	}
	c.mu.Unlock()
	return n, err
}

func (c *sniffConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	drop := c.drop
	c.mu.Unlock()
	if drop {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite sends a TLS close_notify so that opaque relays can half-close.
func (c *meshConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
