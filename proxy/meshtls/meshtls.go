// Package meshtls is mutual TLS between proxies. The outbound side opens TLS 1.3 to an
// endpoint that discovery gave a TLS identity, presents the proxy's certificate and
// requires the peer's certificate to chain to the trust anchors and to name exactly that
// identity. The inbound side recognises a TLS ClientHello, terminates TLS when its SNI is
// the proxy's own identity (reporting the client's identity), and leaves any other TLS
// untouched for the application.
package meshtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/transportheader"
)

// Credentials are what the proxy needs to speak mesh TLS: its own name and certificate
// and the trust anchors. *identity.Identity implements it.
type Credentials interface {
	// Name is the proxy's own identity.
	Name() string
	// Certificate is the current certificate with Leaf set, or nil before the first.
	Certificate() *tls.Certificate
	// Roots are the trust anchors.
	Roots() *x509.CertPool
}

// ErrNoCertificate means the proxy has no certificate yet, so it cannot open or accept
// mesh TLS.
var ErrNoCertificate = errors.New("no identity certificate yet")

// PeerIdentity returns the identity a verified mesh certificate carries: its first DNS
// SAN. It returns "" for a nil certificate.
func PeerIdentity(c *x509.Certificate) string {
	if c == nil || len(c.DNSNames) == 0 {
		return ""
	}
	return c.DNSNames[0]
}

// verify checks a peer's chain against roots for usage and, when name is not empty, that
// the leaf names exactly name (no wildcards).
func verify(rawCerts [][]byte, roots *x509.CertPool, usage x509.ExtKeyUsage, name string) (*x509.Certificate, error) {
	if len(rawCerts) == 0 {
		return nil, errors.New("peer presented no certificate")
	}
	chain := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, fmt.Errorf("peer certificate %d: %w", i, err)
		}
		chain[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, fmt.Errorf("peer certificate does not verify against the trust anchors: %w", err)
	}
	if name != "" && !slices.Contains(chain[0].DNSNames, name) {
		return nil, fmt.Errorf("peer certificate names %v, not the expected identity %s", chain[0].DNSNames, name)
	}
	return chain[0], nil
}

// Connector wraps base so that connections to addresses with a TLS identity (lookup
// returns it, "" for none) are mesh TLS. It is called once per new connection; TLS
// configurations are built once per peer identity and sessions are resumed.
type Connector struct {
	creds     Credentials
	base      forward.ConnectFunc
	lookup    func(netip.AddrPort) string
	transport func(netip.AddrPort) uint16
	configs   sync.Map // configKey -> *tls.Config
	cache     tls.ClientSessionCache
}

type configKey struct {
	id   string
	alpn bool
}

// NewConnector returns a connector; see Connector.
func NewConnector(creds Credentials, base forward.ConnectFunc, lookup func(netip.AddrPort) string) *Connector {
	return &Connector{creds: creds, base: base, lookup: lookup, cache: tls.NewLRUClientSessionCache(1024)}
}

// SetOpaqueTransport makes ConnectOpaque use Linkerd's opaque transport for the
// endpoints port returns an inbound port for (0: none). Call it before use.
func (c *Connector) SetOpaqueTransport(port func(netip.AddrPort) uint16) { c.transport = port }

// ConnectOpaque opens a connection carrying an opaque (non-HTTP) stream to addr. A meshed
// endpoint with an opaque transport port is reached over mesh TLS on that port with the
// ALPN protocol transportheader.ALPN, and the transport header naming addr's port is sent
// first; any other endpoint is reached as Connect would.
func (c *Connector) ConnectOpaque(ctx context.Context, addr string) (net.Conn, error) {
	return c.ConnectOpaqueNamed(ctx, addr, "")
}

// ConnectOpaqueNamed is ConnectOpaque for an endpoint that must be told which Service the
// connection is for: with authority ("name:port", a multicluster gateway's authority
// override) the transport header names that port and name instead of addr's port. Such
// an endpoint must be meshed with an opaque transport port; otherwise it fails.
func (c *Connector) ConnectOpaqueNamed(ctx context.Context, addr, authority string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || c.transport == nil {
		if authority != "" {
			return nil, &forward.ConnectError{Addr: addr, Err: fmt.Errorf("no opaque transport to carry a connection for %s", authority)}
		}
		return c.Connect(ctx, addr)
	}
	id, port := c.lookup(ap), c.transport(ap)
	header := transportheader.Header{Port: ap.Port()}
	if authority != "" {
		if id == "" || port == 0 {
			return nil, &forward.ConnectError{Addr: addr, Err: fmt.Errorf("the endpoint has no mesh identity and opaque transport port to carry a connection for %s", authority)}
		}
		if header, err = namedHeader(authority); err != nil {
			return nil, &forward.ConnectError{Addr: addr, Err: err}
		}
	}
	if id == "" || port == 0 {
		return c.Connect(ctx, addr)
	}
	via := netip.AddrPortFrom(ap.Addr(), port).String()
	conn, err := c.connect(ctx, via, id, true)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(header.Append(nil)); err != nil {
		conn.Close()
		return nil, &forward.ConnectError{Addr: via, Err: fmt.Errorf("sending the transport header: %w", err)}
	}
	return conn, nil
}

// namedHeader returns the transport header naming authority ("name:port").
func namedHeader(authority string) (transportheader.Header, error) {
	host, p, err := net.SplitHostPort(authority)
	if err != nil {
		return transportheader.Header{}, fmt.Errorf("authority override %q: %w", authority, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 || host == "" {
		return transportheader.Header{}, fmt.Errorf("authority override %q is not name:port", authority)
	}
	return transportheader.Header{Port: uint16(port), Name: host}, nil
}

// Connect implements forward.ConnectFunc.
func (c *Connector) Connect(ctx context.Context, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return c.base(ctx, addr)
	}
	id := c.lookup(ap)
	if id == "" {
		return c.base(ctx, addr)
	}
	return c.ConnectTo(ctx, addr, id)
}

// ConnectTo opens mesh TLS to addr, requiring the server to be id.
func (c *Connector) ConnectTo(ctx context.Context, addr, id string) (net.Conn, error) {
	return c.connect(ctx, addr, id, false)
}

func (c *Connector) connect(ctx context.Context, addr, id string, transport bool) (net.Conn, error) {
	if c.creds.Certificate() == nil {
		return nil, &forward.ConnectError{Addr: addr, Err: ErrNoCertificate}
	}
	raw, err := c.base(ctx, addr)
	if err != nil {
		return nil, err
	}
	out := &coalescer{Conn: raw}
	tc := tls.Client(out, c.clientConfig(id, transport))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &forward.ConnectError{Addr: addr, Err: fmt.Errorf("mesh TLS handshake with %s: %w", id, err)}
	}
	if transport && tc.ConnectionState().NegotiatedProtocol != transportheader.ALPN {
		raw.Close()
		return nil, &forward.ConnectError{Addr: addr, Err: fmt.Errorf("%s does not accept the opaque transport (ALPN %s)", id, transportheader.ALPN)}
	}
	mc := newMeshConn(tc, out)
	mc.id = id
	return mc, nil
}

// ServerID returns the identity the server of c proved when c is a mesh TLS connection
// the Connector opened, and "" for any other connection (plaintext).
func ServerID(c net.Conn) string {
	if mc, ok := c.(*meshConn); ok {
		return mc.id
	}
	return ""
}

func (c *Connector) clientConfig(id string, transport bool) *tls.Config {
	key := configKey{id, transport}
	if v, ok := c.configs.Load(key); ok {
		return v.(*tls.Config)
	}
	roots := c.creds.Roots()
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		ServerName:         id,
		ClientSessionCache: c.cache,
		// Verification is done below: chain to the anchors and the exact identity.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert := c.creds.Certificate(); cert != nil {
				return cert, nil
			}
			return nil, ErrNoCertificate
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, pc := range cs.PeerCertificates {
				raw[i] = pc.Raw
			}
			_, err := verify(raw, roots, x509.ExtKeyUsageServerAuth, id)
			return err
		},
	}
	if transport {
		cfg.NextProtos = []string{transportheader.ALPN}
	}
	v, _ := c.configs.LoadOrStore(key, cfg)
	return v.(*tls.Config)
}

// ServerConfig returns the inbound TLS configuration: TLS 1.3, the proxy's current
// certificate, and client certificates verified against the trust anchors when given.
func ServerConfig(creds Credentials) *tls.Config {
	roots := creds.Roots()
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if cert := creds.Certificate(); cert != nil {
				return cert, nil
			}
			return nil, ErrNoCertificate
		},
		ClientAuth: tls.RequestClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil // an unauthenticated client: no client identity
			}
			_, err := verify(raw, roots, x509.ExtKeyUsageClientAuth, "")
			return err
		},
	}
}
