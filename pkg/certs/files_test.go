package certs

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteIdentityFiles reads back the files: an anchor, an issuer it verifies, the
// issuer's key.
func TestWriteIdentityFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	now := time.Now()
	if _, _, err := WriteIdentityFiles(dir, "cluster.local", ValidFor(now, time.Hour)); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	anchors, err := ParseCertificatesPEM(read(TrustAnchorFile))
	if err != nil {
		t.Fatal(err)
	}
	leaf, inter, err := DecodeChainPEM(read(IssuerCertFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := DecodePrivateKeyPEM(read(IssuerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := MatchesKey(leaf, key); err != nil {
		t.Error(err)
	}
	if err := VerifyIssuer(leaf, inter, anchors, now); err != nil {
		t.Error(err)
	}
	if leaf.Subject.CommonName != IssuerCommonName("cluster.local") {
		t.Errorf("issuer CN %q", leaf.Subject.CommonName)
	}
}
