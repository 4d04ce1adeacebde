package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestCertificatePEMRoundTrip(t *testing.T) {
	h := newHierarchy(t)
	other := newHierarchy(t)

	bundle := EncodeCertificatesPEM(h.anchor.Cert, other.anchor.Cert)
	// Comments and blank lines around blocks are tolerated, as in hand-edited bundles.
	bundle = append([]byte("# trust anchors\n\n"), bundle...)
	got, err := ParseCertificatesPEM(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Equal(h.anchor.Cert) || !got[1].Equal(other.anchor.Cert) {
		t.Fatalf("bundle parsed to %d certs, want both anchors in order", len(got))
	}

	leaf, chain, err := DecodeChainPEM(EncodeChainPEM(h.leaf, h.issuer.ChainFor()...))
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Equal(h.leaf) || len(chain) != 1 || !chain[0].Equal(h.issuer.Cert) {
		t.Fatalf("chain did not round-trip")
	}

	ders, err := ParseCertificatesDER(h.leaf.Raw, h.issuer.Cert.Raw)
	if err != nil || len(ders) != 2 || !ders[1].Equal(h.issuer.Cert) {
		t.Fatalf("ParseCertificatesDER: %v", err)
	}
	if _, err := ParseCertificatesDER(h.leaf.Raw, []byte{0x30, 0x00}); err == nil || !strings.Contains(err.Error(), "certificate 2") {
		t.Errorf("bad second DER: err %v, want it to name certificate 2", err)
	}
}

func TestParseCertificatesPEMErrors(t *testing.T) {
	h := newHierarchy(t)
	good := EncodeCertificatePEM(h.anchor.Cert.Raw)
	keyPEM, _ := EncodePrivateKeyPEM(h.leafKey)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "no PEM certificate found"},
		{"plain text", []byte("not a certificate"), "no PEM certificate found"},
		{"truncated", good[:len(good)-20], "truncated"},
		{"private key among anchors", append(append([]byte{}, good...), keyPEM...), `PEM block 2 is "PRIVATE KEY"`},
		{"corrupt DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), "PEM block 1: parsing certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCertificatesPEM(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if _, err := DecodeCertificatePEM(append(append([]byte{}, good...), good...)); err == nil || !strings.Contains(err.Error(), "found 2") {
		t.Errorf("two certificates where one is expected: err %v", err)
	}
}

func TestPrivateKeyPEM(t *testing.T) {
	key, _ := GenerateKey()
	pkcs8, err := EncodePrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := EncodeECPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edPEM, err := EncodePrivateKeyPEM(edKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{"PKCS#8": pkcs8, "SEC 1": sec1} {
		got, err := DecodePrivateKeyPEM(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !got.(*ecdsa.PrivateKey).Equal(key) {
			t.Errorf("%s: decoded a different key", name)
		}
	}
	if !bytes.HasPrefix(pkcs8, []byte("-----BEGIN PRIVATE KEY-----")) || !bytes.HasPrefix(sec1, []byte("-----BEGIN EC PRIVATE KEY-----")) {
		t.Errorf("unexpected PEM block types:\n%s\n%s", pkcs8, sec1)
	}
	if k, err := DecodePrivateKeyPEM(edPEM); err != nil || !edKey.Equal(k) {
		t.Errorf("Ed25519 PKCS#8 key: %v", err)
	}

	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "no PEM private key"},
		{"certificate", EncodeCertificatePEM([]byte{1}), `PEM block is "CERTIFICATE"`},
		{"corrupt PKCS#8", pem.EncodeToMemory(&pem.Block{Type: PEMPrivateKey, Bytes: []byte{1}}), "parsing PKCS#8"},
		{"corrupt EC", pem.EncodeToMemory(&pem.Block{Type: PEMECPrivateKey, Bytes: []byte{1}}), "parsing EC private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodePrivateKeyPEM(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestCSR(t *testing.T) {
	key, _ := GenerateKey()
	der, err := NewCSR(key, workload)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := DecodeCSRPEM(EncodeCSRPEM(der))
	if err != nil {
		t.Fatal(err)
	}
	if name, err := CSRName(csr); err != nil || name != workload {
		t.Errorf("CSRName = %q, %v; want %q", name, err, workload)
	}
	if csr.Subject.CommonName != workload || !publicKeysEqual(csr.PublicKey, key.Public()) {
		t.Errorf("CSR subject %q or key does not match the request", csr.Subject.CommonName)
	}

	tampered := append([]byte(nil), der...)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	emailCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		DNSNames: []string{workload}, EmailAddresses: []string{"a@b"},
	}, key)
	noSAN, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	tests := []struct {
		name string
		der  []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"garbage", []byte("garbage"), "parsing certificate request"},
		{"bad signature", tampered, "signature is invalid"},
		{"email SAN", emailCSR, "only name DNS SANs"},
		{"no SAN", noSAN, "no DNS SAN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := ParseCSR(tt.der)
			if err == nil {
				_, err = CSRName(csr)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if _, err := NewCSR(key, ""); err == nil {
		t.Error("NewCSR accepted an empty name")
	}
	if _, err := DecodeCSRPEM(EncodeCertificatePEM(der)); err == nil || !strings.Contains(err.Error(), `"CERTIFICATE"`) {
		t.Errorf("CSR PEM of wrong type: err %v", err)
	}
}

func TestMatchesKey(t *testing.T) {
	h := newHierarchy(t)
	if err := MatchesKey(h.leaf, h.leafKey); err != nil {
		t.Errorf("leaf and its key: %v", err)
	}
	if err := MatchesKey(h.issuer.Cert, h.leafKey); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("issuer with leaf key: err %v", err)
	}
}
