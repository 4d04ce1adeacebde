package diagnostics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/proxy/admin"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// TestCertificateFromProxyAdmin reads the chain from the proxy's real admin handler.
func TestCertificateFromProxyAdmin(t *testing.T) {
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := certs.GenerateKey()
	name := "web.ns.serviceaccount.identity.linkerd.cluster.local"
	leaf, err := anchor.IssueLeaf(key.Public(), name, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var chain [][]byte
	srv := httptest.NewServer(admin.New(admin.Options{Metrics: metrics.New(), Certificate: func() [][]byte { return chain }}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if _, ok, err := Certificate(t.Context(), addr); ok || err != nil {
		t.Fatalf("before a certificate: ok=%v err=%v", ok, err)
	}
	chain = [][]byte{leaf.Raw}
	got, ok, err := Certificate(t.Context(), addr)
	if err != nil || !ok || got[0].DNSNames[0] != name {
		t.Fatalf("got %v %v %v", got, ok, err)
	}
}
