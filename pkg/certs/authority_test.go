package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"
)

const workload = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"

var now = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// hierarchy is an anchor, an issuer signed by it and a workload leaf issued from a CSR.
type hierarchy struct {
	anchor, issuer *Authority
	leafKey        *ecdsa.PrivateKey
	leaf           *x509.Certificate
}

func newHierarchy(t testing.TB) hierarchy { return newHierarchyAt(t, now) }

func newHierarchyAt(t testing.TB, now time.Time) hierarchy {
	t.Helper()
	anchor, err := NewTrustAnchor(DefaultAnchorCommonName, ValidFor(now, DefaultAnchorLifetime))
	if err != nil {
		t.Fatalf("NewTrustAnchor: %v", err)
	}
	issuer, err := anchor.NewIssuer(DefaultIssuerCommonName, ValidFor(now, DefaultIssuerLifetime))
	if err != nil {
		t.Fatalf("NewIssuer: %v", err)
	}
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := NewCSR(key, workload)
	if err != nil {
		t.Fatalf("NewCSR: %v", err)
	}
	csr, err := ParseCSR(der)
	if err != nil {
		t.Fatalf("ParseCSR: %v", err)
	}
	name, err := CSRName(csr)
	if err != nil || name != workload {
		t.Fatalf("CSRName = %q, %v; want %q", name, err, workload)
	}
	leaf, err := issuer.IssueLeaf(csr.PublicKey, name, ValidFor(now, DefaultLeafLifetime))
	if err != nil {
		t.Fatalf("IssueLeaf: %v", err)
	}
	return hierarchy{anchor: anchor, issuer: issuer, leafKey: key, leaf: leaf}
}

func TestHierarchyHasLinkerdShape(t *testing.T) {
	h := newHierarchy(t)
	bothEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}

	a := h.anchor.Cert
	if a.Subject.CommonName != "root.linkerd.cluster.local" || !a.IsCA || !a.BasicConstraintsValid {
		t.Errorf("anchor subject %q IsCA %v: want a CA named root.linkerd.cluster.local", a.Subject.CommonName, a.IsCA)
	}
	if a.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign || !equalEKU(a.ExtKeyUsage, bothEKU) {
		t.Errorf("anchor usages %v %v, want cert sign+CRL sign, serverAuth+clientAuth", a.KeyUsage, a.ExtKeyUsage)
	}
	if !bytes.Equal(a.RawIssuer, a.RawSubject) || len(a.SubjectKeyId) == 0 {
		t.Errorf("anchor should be self-signed with a subject key id")
	}

	i := h.issuer.Cert
	if i.Subject.CommonName != "identity.linkerd.cluster.local" || !i.IsCA || i.MaxPathLen != 0 || !i.MaxPathLenZero {
		t.Errorf("issuer %q IsCA %v MaxPathLen %d zero %v: want CA identity.linkerd.cluster.local with path length 0",
			i.Subject.CommonName, i.IsCA, i.MaxPathLen, i.MaxPathLenZero)
	}
	if len(i.DNSNames) != 1 || i.DNSNames[0] != DefaultIssuerCommonName {
		t.Errorf("issuer DNS SANs %v, want [%s]", i.DNSNames, DefaultIssuerCommonName)
	}
	if !bytes.Equal(i.AuthorityKeyId, a.SubjectKeyId) {
		t.Errorf("issuer's authority key id does not name the anchor")
	}
	if len(h.issuer.Chain) != 0 || len(h.issuer.ChainFor()) != 1 || h.issuer.ChainFor()[0] != i {
		t.Errorf("issuer signed by an anchor should present only itself as intermediate")
	}

	l := h.leaf
	if l.Subject.CommonName != workload || len(l.DNSNames) != 1 || l.DNSNames[0] != workload || l.IsCA {
		t.Errorf("leaf subject %q SANs %v IsCA %v, want non-CA %s", l.Subject.CommonName, l.DNSNames, l.IsCA, workload)
	}
	if l.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment || !equalEKU(l.ExtKeyUsage, bothEKU) {
		t.Errorf("leaf usages %v %v, want digital signature+key encipherment, serverAuth+clientAuth", l.KeyUsage, l.ExtKeyUsage)
	}
	if !bytes.Equal(l.AuthorityKeyId, i.SubjectKeyId) {
		t.Errorf("leaf's authority key id does not name the issuer")
	}
	if got := l.NotAfter.Sub(l.NotBefore); got != 24*time.Hour+40*time.Second {
		t.Errorf("leaf lifetime %s, want 24h40s", got)
	}
	for name, c := range map[string]*x509.Certificate{"anchor": a, "issuer": i, "leaf": l} {
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() || c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
			t.Errorf("%s key %T sig %v, want ECDSA P-256 with SHA-256", name, c.PublicKey, c.SignatureAlgorithm)
		}
	}
	if !publicKeysEqual(l.PublicKey, h.leafKey.Public()) {
		t.Errorf("leaf was not issued for the CSR's key")
	}
}

func equalEKU(a, b []x509.ExtKeyUsage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestChildValidityClippedToSigner(t *testing.T) {
	anchor, err := NewTrustAnchor("short.anchor", ValidFor(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := anchor.NewIssuer(DefaultIssuerCommonName, ValidFor(now, 48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !issuer.Cert.NotAfter.Equal(anchor.Cert.NotAfter) {
		t.Errorf("issuer NotAfter %s, want clipped to anchor's %s", issuer.Cert.NotAfter, anchor.Cert.NotAfter)
	}
	key, _ := GenerateKey()
	leaf, err := issuer.IssueLeaf(key.Public(), workload, ValidFor(now, DefaultLeafLifetime))
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.NotAfter.Equal(anchor.Cert.NotAfter) {
		t.Errorf("leaf NotAfter %s, want clipped to %s", leaf.NotAfter, anchor.Cert.NotAfter)
	}
	// An authority that has already expired cannot issue anything.
	_, err = issuer.IssueLeaf(key.Public(), workload, ValidFor(now.Add(2*time.Hour), DefaultLeafLifetime))
	if err == nil || !strings.Contains(err.Error(), "expires at") {
		t.Errorf("issuing past the issuer's expiry: err %v, want one saying the authority expires", err)
	}
}

func TestCreationRejectsBadInput(t *testing.T) {
	h := newHierarchy(t)
	key, _ := GenerateKey()
	empty := Validity{NotBefore: now, NotAfter: now}
	otherKey, _ := GenerateKey()
	multi, _ := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{DNSNames: []string{"a", "b"}}, key)
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"anchor without name", func() error { _, err := NewTrustAnchor("", ValidFor(now, time.Hour)); return err }, "common name"},
		{"anchor with empty window", func() error { _, err := NewTrustAnchor("a", empty); return err }, "validity window is empty"},
		{"anchor with zero window", func() error { _, err := NewTrustAnchor("a", Validity{}); return err }, "needs both"},
		{"issuer without name", func() error { _, err := h.anchor.NewIssuer("", ValidFor(now, time.Hour)); return err }, "common name"},
		{"leaf without name", func() error { _, err := h.issuer.IssueLeaf(key.Public(), "", ValidFor(now, time.Hour)); return err }, "needs a name"},
		{"leaf without key", func() error { _, err := h.issuer.IssueLeaf(nil, workload, ValidFor(now, time.Hour)); return err }, "public key is missing"},
		{"garbage CSR", func() error { _, err := ParseCSR([]byte("junk")); return err }, "parsing certificate request"},
		{"two-name CSR", func() error {
			csr, err := ParseCSR(multi)
			if err == nil {
				_, err = CSRName(csr)
			}
			return err
		}, "2 DNS SANs"},
		{"authority from leaf", func() error { _, err := NewAuthority(h.leaf, h.leafKey); return err }, "is not a CA"},
		{"authority with wrong key", func() error { _, err := NewAuthority(h.issuer.Cert, otherKey); return err }, "does not match"},
		{"authority without key", func() error { _, err := NewAuthority(h.issuer.Cert, nil); return err }, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestNewAuthorityFromStoredIssuerIssuesTrustedLeaves(t *testing.T) {
	h := newHierarchy(t)
	// Round-trip the issuer through PEM as the identity service reads it from its Secret.
	crt := EncodeChainPEM(h.issuer.Cert)
	keyPEM, err := EncodeECPrivateKeyPEM(h.issuer.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	cert, chain, err := DecodeChainPEM(crt)
	if err != nil {
		t.Fatal(err)
	}
	key, err := DecodePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := NewAuthority(cert, key, chain...)
	if err != nil {
		t.Fatalf("NewAuthority: %v", err)
	}
	leafKey, _ := GenerateKey()
	leaf, err := issuer.IssueLeaf(leafKey.Public(), workload, ValidFor(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyChain(leaf, issuer.ChainFor(), []*x509.Certificate{h.anchor.Cert}, now, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatalf("leaf from reloaded issuer not trusted: %v", err)
	}
}

// TestMutualTLSHandshake proves the issued certificates work for TLS 1.3 mutual
// authentication over a real loopback connection, with each side naming the other's
// identity, as two meshed proxies do.
func TestMutualTLSHandshake(t *testing.T) {
	h := newHierarchyAt(t, time.Now())
	issuer := h.issuer
	serverLeaf := h.leaf
	clientKey, _ := GenerateKey()
	const clientName = "default.emojivoto.serviceaccount.identity.linkerd.cluster.local"
	clientLeaf, err := issuer.IssueLeaf(clientKey.Public(), clientName, ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	roots := NewPool(h.anchor.Cert)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	peerName := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer conn.Close()
		srv := tls.Server(conn, &tls.Config{
			Certificates: []tls.Certificate{TLSCertificate(h.leafKey, serverLeaf, issuer.ChainFor()...)},
			ClientCAs:    roots,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS13,
		})
		err = srv.Handshake()
		if err == nil {
			peerName <- srv.ConnectionState().PeerCertificates[0].DNSNames[0]
			_, err = srv.Write([]byte("ok"))
		}
		serverErr <- err
	}()

	cli, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		Certificates: []tls.Certificate{TLSCertificate(clientKey, clientLeaf, issuer.ChainFor()...)},
		RootCAs:      roots,
		ServerName:   workload,
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	defer cli.Close()
	buf := make([]byte, 2)
	if _, err := cli.Read(buf); err != nil || string(buf) != "ok" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if err := <-serverErr; err != nil {
		t.Fatalf("server: %v", err)
	}
	if got := <-peerName; got != clientName {
		t.Errorf("server saw client identity %q, want %q", got, clientName)
	}
	if v := cli.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("negotiated TLS version %x, want 1.3", v)
	}
}
