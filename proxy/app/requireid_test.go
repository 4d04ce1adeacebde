package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/config"
)

// tlsClientTo returns an HTTP/1 client whose connections are mesh TLS to addr, for the
// proxy identity server, presenting a certificate for identity (none when empty).
func tlsClientTo(t *testing.T, m *meshCP, addr netip.AddrPort, server, identity string) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(m.pki.Anchor.Cert)
	cfg := &tls.Config{RootCAs: roots, ServerName: server, MinVersion: tls.VersionTLS13}
	if identity != "" {
		own, err := m.pki.ServerTLS(identity)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = own.Certificates
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr.String())
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		},
		DisableKeepAlives: true,
	}}
}

// TestInboundPortsRequireIdentityAndTLS: a port listed in
// LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY serves only mesh TLS clients with a
// verified identity; one in _REQUIRE_TLS serves mesh TLS clients with or without one;
// refused connections are closed and counted in inbound_tcp_errors_total with Linkerd's
// error="unauthorized". Other ports are not affected.
func TestInboundPortsRequireIdentityAndTLS(t *testing.T) {
	m := startMeshCP(t)
	app := namedApp(t, "app")
	port := fmt.Sprint(app.Port())
	type want struct{ plain, tlsAnon, tlsID bool }
	for _, tc := range []struct {
		name string
		env  map[string]string
		want want
	}{
		{"require identity", map[string]string{config.EnvInboundPortsRequireID: port}, want{tlsID: true}},
		{"require tls", map[string]string{config.EnvInboundPortsRequireTLS: "1-2," + port}, want{tlsAnon: true, tlsID: true}},
		{"other ports", map[string]string{config.EnvInboundPortsRequireID: "1", config.EnvInboundPortsRequireTLS: "2"}, want{true, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := meshPair(t, m, app, tc.env)
			serverIn, _, _ := server.Addrs()
			_, out, _ := client.Addrs()
			// The meshed client proxy always gets through: it presents its identity.
			if body, err := fetch(clientTo(out, false), "http://"+svc+"/"); err != nil || body != "app" {
				t.Fatalf("through the client proxy: %q %v", body, err)
			}
			refused := 0
			for _, c := range []struct {
				what string
				c    *http.Client
				ok   bool
			}{
				{"plaintext", clientTo(serverIn, false), tc.want.plain},
				{"TLS without a client certificate", tlsClientTo(t, m, serverIn, serverIdentity, ""), tc.want.tlsAnon},
				{"TLS with a client identity", tlsClientTo(t, m, serverIn, serverIdentity, clientIdentity), tc.want.tlsID},
			} {
				body, err := fetch(c.c, "http://"+svc+"/")
				switch {
				case c.ok && (err != nil || body != "app"):
					t.Errorf("%s: %q %v, want the application's answer", c.what, body, err)
				case !c.ok && err == nil:
					t.Errorf("%s: answered %q, want the connection closed", c.what, body)
				}
				if !c.ok {
					refused++
				}
			}
			series := fmt.Sprintf(`inbound_tcp_errors_total{target_addr="%s",error="unauthorized"}`, app)
			got := grepLines(scrape(t, server), "inbound_tcp_errors_total{")
			if refused == 0 {
				if got != "" {
					t.Errorf("nothing was refused, yet:\n%s", got)
				}
			} else if !strings.Contains(got, fmt.Sprintf("%s %d", series, refused)) {
				t.Errorf("want %s %d, got:\n%s", series, refused, got)
			}
		})
	}
}
