package identity

import (
	"context"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/l5d-go/l5d/pkg/eventually"
	pbidentity "github.com/l5d-go/l5d/proto/gen/identity"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
	"github.com/l5d-go/l5d/proxy/metrics"
)

const localName = "web.default.serviceaccount.identity.linkerd.cluster.local"

type fixture struct {
	pki   *scriptedcp.PKI
	srv   *scriptedcp.Identity
	addr  string
	token string
	reg   *metrics.Registry
}

func newFixture(t *testing.T, lifetime time.Duration) *fixture {
	t.Helper()
	pki, err := scriptedcp.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{pki: pki, srv: &scriptedcp.Identity{PKI: pki, Lifetime: lifetime}, reg: metrics.New()}
	f.addr, err = f.srv.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.srv.Stop)
	f.token = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f.token, []byte("token-1"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) start(t *testing.T, opts Options) *Identity {
	t.Helper()
	cc, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	opts.Client = pbidentity.NewIdentityClient(cc)
	if opts.LocalName == "" {
		opts.LocalName = localName
	}
	opts.TokenFile = f.token
	if opts.TrustAnchors == nil {
		opts.TrustAnchors = []*x509.Certificate{f.pki.Anchor.Cert}
	}
	opts.Metrics = f.reg
	opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	opts.Log = slog.New(slog.DiscardHandler)
	id, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { id.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return id
}

func TestFirstCertificateAndMetrics(t *testing.T) {
	f := newFixture(t, time.Hour)
	id := f.start(t, Options{})
	select {
	case <-id.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("no certificate")
	}
	c := id.Certificate()
	if c == nil || !slices.Contains(c.Leaf.DNSNames, localName) {
		t.Fatalf("certificate %v", c)
	}
	if got := f.srv.Tokens(); len(got) != 1 || got[0] != "token-1" {
		t.Errorf("tokens sent %q", got)
	}
	var sb strings.Builder
	f.reg.WriteTo(&sb)
	for _, want := range []string{"identity_cert_refresh_count 1\n", "identity_cert_expiration_timestamp_seconds "} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(sb.String(), "identity_cert_expiration_timestamp_seconds 0\n") {
		t.Error("expiry metric is zero with a certificate in place")
	}
}

func TestRenewsAndRereadsToken(t *testing.T) {
	f := newFixture(t, 1*time.Second)
	id := f.start(t, Options{})
	<-id.Ready()
	first := id.Certificate()
	if err := os.WriteFile(f.token, []byte("token-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "renewal with the new token", func() bool {
		return slices.Contains(f.srv.Tokens(), "token-2") && id.Certificate() != first
	})
	if id.Refreshes() < 2 {
		t.Errorf("refreshes %d", id.Refreshes())
	}
}

func TestRejectsCertificateFromAnotherTrustDomain(t *testing.T) {
	f := newFixture(t, time.Hour)
	other, err := scriptedcp.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	id := f.start(t, Options{TrustAnchors: []*x509.Certificate{other.Anchor.Cert}})
	eventually.True(t, "several attempts", func() bool { return len(f.srv.Tokens()) >= 3 })
	if id.Certificate() != nil {
		t.Fatal("installed a certificate that does not chain to the trust anchors")
	}
	select {
	case <-id.Ready():
		t.Fatal("ready without a valid certificate")
	default:
	}
}

func TestRetriesUntilServiceAnswers(t *testing.T) {
	f := newFixture(t, time.Hour)
	f.srv.Token = "good"
	id := f.start(t, Options{})
	eventually.True(t, "rejected attempts", func() bool { return len(f.srv.Tokens()) >= 2 })
	if err := os.WriteFile(f.token, []byte("good"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-id.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("did not recover once the token was accepted")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("no client: no error")
	}
}
