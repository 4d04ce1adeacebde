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
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/identity/certify"
	"github.com/l5d-go/l5d/identity/issuer"
	"github.com/l5d-go/l5d/pkg/certs"
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

// TestBinaryServesCertifyAndBecomesReady runs the command's wiring against the real API
// server: not ready and failing while the issuer Secret is missing, then serving.
func TestBinaryServesCertifyAndBecomesReady(t *testing.T) {
	c := kube.Shared(t)
	cp := c.Namespace(t)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", addr, "-admin-addr", adminAddr, "-kubeconfig", c.Kubeconfig(),
			"-controller-namespace", cp, "-startup-timeout", "60s", "-log-level", "error"})
	}()
	t.Cleanup(func() { cancel(); <-done })

	ready := func() int {
		resp, err := http.Get("http://" + adminAddr + "/ready")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for ready() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("admin server never came up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := ready(); code == http.StatusOK {
		t.Fatal("ready before the issuer exists")
	}

	now := time.Now()
	anchor, _ := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(now, time.Hour))
	iss, _ := anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), certs.ValidFor(now, time.Hour))
	keyPEM, _ := certs.EncodePrivateKeyPEM(iss.Key)
	cs := c.Client().CoreV1()
	if _, err := cs.ConfigMaps(cp).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: issuer.DefaultTrustRootsMap},
		Data: map[string]string{issuer.TrustRootsKey: string(certs.EncodeCertificatesPEM(anchor.Cert))}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Secrets(cp).Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: issuer.DefaultSecretName},
		Data: map[string][]byte{"crt.pem": certs.EncodeCertificatesPEM(iss.Cert), "key.pem": keyPEM}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for ready() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("not ready after the issuer Secret appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}

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
	if err != nil || leaf.DNSNames[0] != id {
		t.Fatalf("leaf: %v %v", err, leaf)
	}
	metrics, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer metrics.Body.Close()
	body, _ := io.ReadAll(metrics.Body)
	if !strings.Contains(string(body), "identity_certificates_issued_total 1") {
		t.Fatalf("issued certificate not counted in /metrics")
	}
}
