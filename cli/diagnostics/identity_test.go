package diagnostics

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
)

// leafChain issues a workload leaf from a fresh trust anchor, as the identity
// controller would, and returns it PEM-encoded with the parsed leaf.
func leafChain(t testing.TB, name string) ([]byte, *x509.Certificate) {
	t.Helper()
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, err := certs.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := anchor.IssueLeaf(key.Public(), name, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return certs.EncodeCertificatesPEM(leaf, anchor.Cert), leaf
}

// TestCertificateDump: the chain a proxy serves parses, and its leaf prints in the
// openssl layout `linkerd identity` shows, with the identity as subject and DNS name.
func TestCertificateDump(t *testing.T) {
	name := "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
	pem, _ := leafChain(t, name)
	chain, err := ParseCertificateChain(pem)
	if err != nil || len(chain) != 2 {
		t.Fatalf("chain of %d: %v", len(chain), err)
	}
	var b bytes.Buffer
	WriteCertificate(&b, chain[0])
	out := b.String()
	for _, want := range []string{
		"Certificate:\n    Data:\n        Version: 3 (0x2)\n",
		"    Signature Algorithm: ECDSA-SHA256\n        Issuer: CN=" + certs.DefaultAnchorCommonName + "\n",
		"        Validity\n            Not Before: ",
		"        Subject: CN=" + name + "\n",
		"            Public Key Algorithm: ECDSA\n                Public-Key: (256 bit)\n                X:\n",
		"                Curve: P-256\n",
		"            X509v3 Subject Alternative Name:\n                DNS:" + name + "\n",
		"TLS Web Server Authentication, TLS Web Client Authentication",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dump lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "         ") || strings.HasSuffix(last, ":") {
		t.Errorf("signature block should end the dump, last line %q", last)
	}
	for _, bad := range []string{"", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "hello"} {
		if _, err := ParseCertificateChain([]byte(bad)); err == nil || !strings.Contains(err.Error(), "not a PEM certificate chain") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func FuzzParseCertificateChain(f *testing.F) {
	pem, _ := leafChain(f, "a.b.serviceaccount.identity.linkerd.cluster.local")
	f.Add(pem)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		chain, err := ParseCertificateChain(in)
		if err == nil {
			var b bytes.Buffer
			WriteCertificate(&b, chain[0])
		}
	})
}
