package accept

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
	"github.com/l5d-go/l5d/proxy/meshtls"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// testCreds are mesh TLS credentials for name issued by a test PKI.
type testCreds struct {
	name string
	cert *tls.Certificate
	pki  *scriptedcp.PKI
}

func (c *testCreds) Name() string                  { return c.name }
func (c *testCreds) Certificate() *tls.Certificate { return c.cert }
func (c *testCreds) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.pki.Anchor.Cert)
	return p
}

func newTestCreds(t *testing.T, name string) *testCreds {
	t.Helper()
	pki, err := scriptedcp.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ServerTLS(name)
	if err != nil {
		t.Fatal(err)
	}
	cert := cfg.Certificates[0]
	if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
		t.Fatal(err)
	}
	return &testCreds{name: name, cert: &cert, pki: pki}
}

// countSeries counts the samples of a metric family in an exposition.
func countSeries(text, name string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, name+"{") {
			n++
		}
	}
	return n
}

// TestPassthroughSNIMetricsAreBounded: ClientHellos with ever new server names, relayed
// as TLS passthrough, each label their connection's metrics with the name; the series
// are bounded (beyond MaxSeries they go to the overflow series) and those of closed
// connections are dropped once idle, so the exposition does not grow without bound.
func TestPassthroughSNIMetricsAreBounded(t *testing.T) {
	const maxSeries, hellos = 50, 300
	reg := metrics.New()
	reg.MaxSeries = maxSeries
	reg.RetainIdle = time.Nanosecond // dropped at the second exposition that sees them idle
	s := &Server{
		Direction:     "inbound",
		Fallback:      netip.MustParseAddrPort("10.0.0.1:443"),
		DetectTimeout: 10 * time.Second,
		TLS:           meshtls.NewTerminator(newTestCreds(t, "web.ns.serviceaccount.identity.linkerd.cluster.local")),
		TCP: func(_ context.Context, conn net.Conn, _ *forward.ConnInfo, _ *metrics.TCP) {
			conn.Close()
		},
		Metrics: reg,
	}
	addr := serve(t, s)
	var before strings.Builder
	reg.WriteTo(&before)
	for i := range hellos {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(c, &tls.Config{ServerName: fmt.Sprintf("host-%d.example.com", i), InsecureSkipVerify: true})
		tc.Handshake() // the proxy relays the ClientHello to the stand-in application, which closes
		c.Close()
	}
	eventually.True(t, "the connections to be closed", func() bool { return s.OpenConnections() == 0 })
	var during strings.Builder
	reg.WriteTo(&during)
	if n := countSeries(during.String(), "tcp_open_total"); n > maxSeries+1 {
		t.Fatalf("%d tcp_open_total series after %d server names, want at most %d and the overflow series", n, hellos, maxSeries)
	}
	if !strings.Contains(during.String(), `tcp_open_total{overflow="true"}`) {
		t.Fatalf("no overflow series:\n%s", during.String())
	}
	var after strings.Builder
	reg.WriteTo(&after)
	if n := countSeries(after.String(), "tcp_open_total"); n != 0 {
		t.Fatalf("%d tcp_open_total series left once every connection is closed and idle", n)
	}
	t.Logf("exposition: %d bytes before, %d with %d server names, %d once idle", before.Len(), during.Len(), hellos, after.Len())
}
