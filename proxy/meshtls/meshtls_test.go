package meshtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
	"github.com/l5d-go/l5d/proxy/opaque"
	"github.com/l5d-go/l5d/proxy/transportheader"
)

type creds struct {
	name  string
	cert  *tls.Certificate
	roots *x509.CertPool
}

func (c *creds) Name() string                  { return c.name }
func (c *creds) Certificate() *tls.Certificate { return c.cert }
func (c *creds) Roots() *x509.CertPool         { return c.roots }

func newCreds(t testing.TB, pki *scriptedcp.PKI, name string) *creds {
	t.Helper()
	key, err := certs.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.Issuer.IssueLeaf(key.Public(), name, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tc := certs.TLSCertificate(key, leaf, pki.Issuer.ChainFor()...)
	tc.Leaf = leaf
	return &creds{name: name, cert: &tc, roots: certs.NewPool(pki.Anchor.Cert)}
}

const (
	serverID = "server.ns.serviceaccount.identity.linkerd.cluster.local"
	clientID = "client.ns.serviceaccount.identity.linkerd.cluster.local"
)

// serve accepts one connection through a Terminator and reports its outcome; a
// Terminated or Plain connection is echoed, a Passthrough one relayed to passTo.
func serve(t *testing.T, term *Terminator, passTo string) (string, <-chan Accepted) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	out := make(chan Accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		res, err := term.Accept(c, 5*time.Second)
		if err != nil {
			c.Close()
			close(out)
			return
		}
		out <- res
		if res.Kind == Passthrough {
			up, err := net.Dial("tcp", passTo)
			if err != nil {
				res.Conn.Close()
				return
			}
			opaque.Relay(res.Conn, up, nil, nil)
			return
		}
		io.Copy(res.Conn, res.Conn)
		res.Conn.Close()
	}()
	return ln.Addr().String(), out
}

func TestMutualTLSCarriesClientIdentity(t *testing.T) {
	pki, err := scriptedcp.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := newCreds(t, pki, serverID), newCreds(t, pki, clientID)
	addr, out := serve(t, NewTerminator(srv), "")
	conn := NewConnector(cli, forward.TCPConnector(5*time.Second, 0), func(netip.AddrPort) string { return serverID })
	c, err := conn.Connect(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res := <-out
	if res.Kind != Terminated || res.ClientID != clientID || res.SNI != serverID {
		t.Fatalf("server saw kind %v client %q sni %q", res.Kind, res.ClientID, res.SNI)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
	if tc := c.(*meshConn).Conn.(*tls.Conn); tc.ConnectionState().Version != tls.VersionTLS13 {
		t.Error("not TLS 1.3")
	}
}

func TestWrongServerIdentityIsRefused(t *testing.T) {
	pki, err := scriptedcp.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	// The server holds a valid certificate for another name than the one discovery gave.
	impostor := newCreds(t, pki, "other.ns.serviceaccount.identity.linkerd.cluster.local")
	impostor.name = serverID // it answers the SNI, but its certificate is not serverID's
	addr, _ := serve(t, NewTerminator(impostor), "")
	conn := NewConnector(newCreds(t, pki, clientID), forward.TCPConnector(5*time.Second, 0),
		func(netip.AddrPort) string { return serverID })
	_, err = conn.Connect(context.Background(), addr)
	if err == nil || !strings.Contains(err.Error(), "not the expected identity") {
		t.Fatalf("connect to the wrong identity: %v", err)
	}
	var ce *forward.ConnectError
	if !errors.As(err, &ce) {
		t.Errorf("error is not a ConnectError (502): %T", err)
	}
}

func TestOtherTrustDomainIsRefused(t *testing.T) {
	pki, _ := scriptedcp.NewPKI()
	other, _ := scriptedcp.NewPKI()
	addr, _ := serve(t, NewTerminator(newCreds(t, other, serverID)), "")
	conn := NewConnector(newCreds(t, pki, clientID), forward.TCPConnector(5*time.Second, 0),
		func(netip.AddrPort) string { return serverID })
	if _, err := conn.Connect(context.Background(), addr); err == nil {
		t.Fatal("a server from another trust domain was accepted")
	}
}

func TestOtherTLSPassesThrough(t *testing.T) {
	pki, _ := scriptedcp.NewPKI()
	// The application's own TLS server, for a name that is not the proxy's.
	appCfg, err := pki.ServerTLS("app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	appLn, err := tls.Listen("tcp", "127.0.0.1:0", appCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer appLn.Close()
	go func() {
		c, err := appLn.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	addr, out := serve(t, NewTerminator(newCreds(t, pki, serverID)), appLn.Addr().String())
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "app.example.com", RootCAs: certs.NewPool(pki.Anchor.Cert)})
	if err != nil {
		t.Fatalf("TLS through the passthrough: %v", err)
	}
	defer c.Close()
	if res := <-out; res.Kind != Passthrough || res.SNI != "app.example.com" {
		t.Fatalf("kind %v sni %q", res.Kind, res.SNI)
	}
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo %q %v", buf, err)
	}
}

func TestPlainBytesAreReplayed(t *testing.T) {
	pki, _ := scriptedcp.NewPKI()
	addr, out := serve(t, NewTerminator(newCreds(t, pki, serverID)), "")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\n"))
	if res := <-out; res.Kind != Plain {
		t.Fatalf("kind %v", res.Kind)
	}
	buf := make([]byte, 16)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("echo %q %v", buf, err)
	}
}

// TestOpaqueTransportALPN: ConnectOpaque to an endpoint with an opaque transport port
// negotiates transportheader.ALPN there and sends the header naming the original port;
// a mesh TLS client offering another protocol is still accepted, without ALPN.
func TestOpaqueTransportALPN(t *testing.T) {
	pki, err := scriptedcp.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := newCreds(t, pki, serverID), newCreds(t, pki, clientID)
	addr, accepted := serve(t, NewTerminator(srv), "")
	inbound := netip.MustParseAddrPort(addr)
	original := netip.AddrPortFrom(inbound.Addr(), 7000) // nothing listens there
	var d net.Dialer
	conn := NewConnector(cli, func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) },
		func(netip.AddrPort) string { return serverID })
	conn.SetOpaqueTransport(func(a netip.AddrPort) uint16 {
		if a == original {
			return inbound.Port()
		}
		return 0
	})
	c, err := conn.ConnectOpaque(context.Background(), original.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res := <-accepted
	if res.Kind != Terminated || res.ALPN != transportheader.ALPN || res.ClientID != clientID {
		t.Fatalf("accepted %+v", res)
	}
	// The server side echoes: the header the client sent comes back.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	h, err := transportheader.Read(c)
	if err != nil || h.Port != 7000 {
		t.Fatalf("header %+v %v", h, err)
	}

	addr, accepted = serve(t, NewTerminator(srv), "")
	cfg := conn.clientConfig(serverID, false).Clone()
	cfg.NextProtos = []string{"h2"}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, cfg)
	defer tc.Close()
	if err := tc.Handshake(); err != nil {
		t.Fatalf("a client offering h2: %v", err)
	}
	if res := <-accepted; res.Kind != Terminated || res.ALPN != "h2" || tc.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("accepted %+v, client negotiated %q; want h2 selected (gRPC clients require it)", res, tc.ConnectionState().NegotiatedProtocol)
	}
}

// TestOpaqueTransportNamed: ConnectOpaqueNamed sends the header naming the authority
// override's port and name (a gateway forwards by it), and refuses an override it cannot
// carry: an endpoint without an opaque transport port or identity, an authority that is
// not name:port.
func TestOpaqueTransportNamed(t *testing.T) {
	pki, err := scriptedcp.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := newCreds(t, pki, serverID), newCreds(t, pki, clientID)
	addr, accepted := serve(t, NewTerminator(srv), "")
	gateway := netip.MustParseAddrPort(addr)
	plain := netip.AddrPortFrom(gateway.Addr(), 7001) // no opaque transport port
	var d net.Dialer
	conn := NewConnector(cli, func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) },
		func(netip.AddrPort) string { return serverID })
	conn.SetOpaqueTransport(func(a netip.AddrPort) uint16 {
		if a == gateway {
			return gateway.Port()
		}
		return 0
	})
	c, err := conn.ConnectOpaqueNamed(context.Background(), gateway.String(), "web.ns.svc.cluster.local:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if res := <-accepted; res.Kind != Terminated || res.ALPN != transportheader.ALPN {
		t.Fatalf("accepted %+v", res)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	h, err := transportheader.Read(c)
	if err != nil || h != (transportheader.Header{Port: 8080, Name: "web.ns.svc.cluster.local"}) {
		t.Fatalf("header %+v %v", h, err)
	}
	for _, bad := range []struct{ addr, authority string }{
		{plain.String(), "web.ns.svc.cluster.local:8080"},
		{gateway.String(), "web.ns.svc.cluster.local"},
		{gateway.String(), "web.ns.svc.cluster.local:0"},
		{gateway.String(), ":8080"},
	} {
		if c, err := conn.ConnectOpaqueNamed(context.Background(), bad.addr, bad.authority); err == nil {
			c.Close()
			t.Errorf("ConnectOpaqueNamed(%s, %q) connected", bad.addr, bad.authority)
		}
	}
}
