package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/l5d-go/l5d/identity/certify"
	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/eventually"
	pb "github.com/l5d-go/l5d/proto/gen/identity"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeMounted lays files out as the kubelet does for a Secret volume: a new timestamped
// directory swapped in through the ..data symlink.
func writeMounted(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	ts, err := os.MkdirTemp(dir, "..ts-")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ts, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func issuerFiles(t *testing.T, iss *certs.Authority, crtName, keyName string) map[string][]byte {
	t.Helper()
	keyPEM, err := certs.EncodePrivateKeyPEM(iss.Key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{crtName: certs.EncodeCertificatesPEM(iss.Cert), keyName: keyPEM}
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBinaryServesCertifyAndBecomesReady runs the command's wiring against the real API
// server with the issuer mounted as Linkerd mounts it (kubernetes.io/tls scheme, as
// cert-manager writes it): not ready while the mounted Secret is empty, then ready and
// serving Certify, with the issuance counted in /metrics.
func TestBinaryServesCertifyAndBecomesReady(t *testing.T) {
	t.Parallel()
	c := kube.Shared(t)
	cp := c.Namespace(t)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	issuerDir := t.TempDir()
	anchorsFile := filepath.Join(t.TempDir(), "ca-bundle.crt")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", addr, "-admin-addr", adminAddr, "-kubeconfig", c.Kubeconfig(),
			"-controller-namespace", cp, "-identity-scheme", "kubernetes.io/tls", "-issuer", issuerDir,
			"-identity-trust-anchors-file", anchorsFile, "-startup-timeout", "60s", "-log-level", "error"})
	}()
	t.Cleanup(func() { cancel(); <-done })

	ready := func() int { return httpStatus("http://" + adminAddr + "/ready") }
	eventually.True(t, "the admin server", func() bool { return ready() != 0 })
	if code := ready(); code == http.StatusOK {
		t.Fatal("ready before the issuer exists")
	}

	now := time.Now()
	anchor, _ := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(now, 72*time.Hour))
	iss, _ := anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), certs.ValidFor(now, 48*time.Hour))
	if err := os.WriteFile(anchorsFile, certs.EncodeCertificatesPEM(anchor.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	files := issuerFiles(t, iss, "tls.crt", "tls.key")
	files["ca.crt"] = certs.EncodeCertificatesPEM(anchor.Cert)
	writeMounted(t, issuerDir, files)
	eventually.True(t, "readiness after the issuer appeared", func() bool { return ready() == http.StatusOK })

	ns := c.Namespace(t)
	c.CreateServiceAccount(t, ns, "web")
	token := c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	id := fmt.Sprintf("web.%s.serviceaccount.identity.%s.cluster.local", ns, cp)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := certs.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	resp, err := pb.NewIdentityClient(cc).Certify(t.Context(), &pb.CertifyRequest{Identity: id, Token: []byte(token), CertificateSigningRequest: csr})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(resp.LeafCertificate)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.VerifyChain(leaf, []*x509.Certificate{iss.Cert}, []*x509.Certificate{anchor.Cert}, time.Now(), x509.ExtKeyUsageServerAuth); err != nil {
		t.Fatalf("leaf does not verify: %v", err)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life != 24*time.Hour+40*time.Second {
		t.Fatalf("leaf lifetime %s, want 24h plus 20s of skew either side", life)
	}
	metrics, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer metrics.Body.Close()
	body, _ := io.ReadAll(metrics.Body)
	for _, want := range []string{
		"identity_certificates_issued_total 1",
		fmt.Sprintf("identity_issuer_expiry_timestamp_seconds %s", strconv.FormatFloat(float64(iss.Cert.NotAfter.Unix()), 'g', -1, 64)),
		"identity_tokenreview_duration_seconds_count 1",
	} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
}

// TestStartupFailsNamingTheProblem: a missing, expired or foreign issuer stops the
// command with an error naming the Secret, the file and the problem.
func TestStartupFailsNamingTheProblem(t *testing.T) {
	t.Parallel()
	c := kube.Shared(t)
	now := time.Now()
	anchor, _ := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(now, time.Hour))
	expired, _ := anchor.NewIssuer("expired", certs.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)})
	rogueAnchor, _ := certs.NewTrustAnchor("rogue", certs.ValidFor(now, time.Hour))
	rogue, _ := rogueAnchor.NewIssuer("rogue", certs.ValidFor(now, time.Hour))
	anchorsFile := filepath.Join(t.TempDir(), "ca-bundle.crt")
	if err := os.WriteFile(anchorsFile, certs.EncodeCertificatesPEM(anchor.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		args  []string
		want  []string
	}{
		{"missing", nil, nil, []string{"Secret linkerd/linkerd-identity-issuer", "crt.pem", "no such file"}},
		{"expired", issuerFiles(t, expired, "crt.pem", "key.pem"), nil, []string{"Secret linkerd/linkerd-identity-issuer", `"expired" is not usable`}},
		{"not chaining to the trust anchors", issuerFiles(t, rogue, "crt.pem", "key.pem"), nil, []string{"Secret linkerd/linkerd-identity-issuer", `"rogue" is not usable`}},
		{"unknown scheme", nil, []string{"-identity-scheme", "example.com/pem"}, []string{"-identity-scheme", "example.com/pem"}},
		{"unknown source", nil, []string{"-issuer-source", "vault"}, []string{"-issuer-source", "vault"}},
		{"zero lifetime", nil, []string{"-identity-issuance-lifetime", "0s"}, []string{"-identity-issuance-lifetime"}},
		{"bad trust domain", nil, []string{"-identity-trust-domain", "cluster..local"}, []string{"trust domain", "cluster..local"}},
		{"bad namespace", nil, []string{"-controller-namespace", "Linkerd"}, []string{"controller namespace", "Linkerd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.files != nil {
				writeMounted(t, dir, tc.files)
			}
			args := append([]string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-kubeconfig", c.Kubeconfig(),
				"-issuer", dir, "-identity-trust-anchors-file", anchorsFile, "-startup-timeout", "100ms", "-log-level", "error"}, tc.args...)
			err := run(t.Context(), args)
			if err == nil {
				t.Fatal("started without a valid issuer")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
