package servingcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for 127.0.0.1 with common name cn.
func writePair(t *testing.T, dir, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Write to temporary names and rename, as a kubelet's Secret update does.
	for name, blk := range map[string]*pem.Block{"tls.crt": {Type: "CERTIFICATE", Bytes: der}, "tls.key": {Type: "EC PRIVATE KEY", Bytes: kder}} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// servedCN dials a TLS server using r and returns the served certificate's common name.
func servedCN(t *testing.T, r *Reloader) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: r.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	writePair(t, dir, "first")
	r, err := New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	r.CheckInterval = time.Nanosecond
	if cn := servedCN(t, r); cn != "first" {
		t.Fatalf("served %q, want first", cn)
	}
	writePair(t, dir, "second")
	// Same-size files written within the filesystem's timestamp granularity look unchanged;
	// poll with a deadline, rewriting, until the new pair is served.
	deadline := time.Now().Add(10 * time.Second)
	for servedCN(t, r) != "second" {
		if time.Now().After(deadline) {
			t.Fatal("rotated certificate never served")
		}
		writePair(t, dir, "second")
	}
	// A broken update keeps the last good pair and reports the error.
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cn := servedCN(t, r); cn != "second" {
		t.Errorf("served %q after a broken update, want the last good pair", cn)
	}
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Errorf("Err = %v, want one naming tls.crt", err)
	}
}

func TestNewNamesMissingFile(t *testing.T) {
	_, err := New("/nonexistent/tls.crt", "/nonexistent/tls.key")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/tls.crt") {
		t.Errorf("err = %v, want one naming the missing file", err)
	}
}
