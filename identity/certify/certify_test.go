package certify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/identity/certify"
	"github.com/l5d-go/l5d/identity/issuer"
	"github.com/l5d-go/l5d/pkg/certs"
	pb "github.com/l5d-go/l5d/proto/gen/identity"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// env is a running identity service on loopback backed by the real API server.
type env struct {
	c       *kube.Cluster
	cpNS    string
	anchor  *certs.Authority
	svc     *certify.Service
	client  pb.IdentityClient
	secret  *corev1.Secret
	watcher *issuer.Watcher
}

func issuerSecret(t testing.TB, ns string, a *certs.Authority) *corev1.Secret {
	t.Helper()
	key, err := certs.EncodePrivateKeyPEM(a.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: issuer.DefaultSecretName, Namespace: ns},
		Data: map[string][]byte{
			"crt.pem": certs.EncodeCertificatesPEM(append([]*x509.Certificate{a.Cert}, a.Chain...)...),
			"key.pem": key,
		},
	}
}

func startEnv(t *testing.T) *env { return startEnvB(t, false) }

// startEnvB starts the service; with localReview, tokens are accepted without a
// TokenReview (benchmark baseline) as belonging to web in any namespace.
func startEnvB(t testing.TB, localReview bool) *env {
	t.Helper()
	c := kube.Shared(t)
	ctx := t.Context()
	cpNS := c.Namespace(t)
	now := time.Now()
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(now, 365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), certs.ValidFor(now, 365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sec, err := c.Client().CoreV1().Secrets(cpNS).Create(ctx, issuerSecret(t, cpNS, iss), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: issuer.DefaultTrustRootsMap, Namespace: cpNS},
		Data: map[string]string{issuer.TrustRootsKey: string(certs.EncodeCertificatesPEM(anchor.Cert))}}
	if _, err := c.Client().CoreV1().ConfigMaps(cpNS).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store := &issuer.Store{}
	w := &issuer.Watcher{Client: c.Client(), Namespace: cpNS, Store: store, Component: "identity-test", Log: quiet}
	if err := w.Register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	m := certify.NewMetrics()
	var reviewer certify.Reviewer = certify.NewTokenReviewer(c.Client(), certify.TokenAudience, 16, m)
	if localReview {
		reviewer = trustingReviewer{}
	}
	svc := certify.New(certify.Options{Issuer: store, ControllerNS: cpNS, Metrics: m, Reviewer: reviewer, Log: quiet})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterIdentityServer(gs, svc)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &env{c: c, cpNS: cpNS, anchor: anchor, svc: svc, client: pb.NewIdentityClient(cc), secret: sec, watcher: w}
}

var quiet = slog.New(slog.DiscardHandler)

// trustingReviewer believes every token belongs to the identity asked for (benchmarks).
type trustingReviewer struct{}

func (trustingReviewer) Review(ctx context.Context, token string) (string, error) {
	return reviewedUser.Load().(string), nil
}

var reviewedUser atomic.Value

func csr(t testing.TB, key any, names ...string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}, DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func p256(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// verify checks that resp is a leaf for id chaining to anchor, valid for about 24h.
func verify(t *testing.T, resp *pb.CertifyResponse, id string, anchor *certs.Authority) *x509.Certificate {
	t.Helper()
	leaf, err := x509.ParseCertificate(resp.GetLeafCertificate())
	if err != nil {
		t.Fatalf("leaf is not DER: %v", err)
	}
	inter, err := certs.ParseCertificatesDER(resp.GetIntermediateCertificates()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.VerifyChain(leaf, inter, []*x509.Certificate{anchor.Cert}, time.Now(), x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatalf("leaf does not verify against the anchor: %v", err)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != id {
		t.Fatalf("leaf SANs = %v, want [%s]", leaf.DNSNames, id)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 24*time.Hour || life > 24*time.Hour+time.Minute {
		t.Fatalf("leaf lifetime %s, want 24h plus skew", life)
	}
	if !resp.GetValidUntil().AsTime().Equal(leaf.NotAfter) {
		t.Fatalf("valid_until %s != NotAfter %s", resp.GetValidUntil().AsTime(), leaf.NotAfter)
	}
	return leaf
}

func TestCertifyWithPodBoundToken(t *testing.T) {
	e := startEnv(t)
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	e.c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: ns},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "app"}}}})
	token := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}, Pod: "web-0"})
	id := e.svc.Identity(ns, "web")
	resp, err := e.client.Certify(t.Context(), &pb.CertifyRequest{Identity: id, Token: []byte(token), CertificateSigningRequest: csr(t, p256(t), id)})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, resp, id, e.anchor)
}

func TestCertifyRefusals(t *testing.T) {
	e := startEnv(t)
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	e.c.CreateServiceAccount(t, ns, "other")
	id := e.svc.Identity(ns, "web")
	good := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	otherTok := e.c.Token(t, ns, "other", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	wrongAud := e.c.Token(t, ns, "web", kube.TokenOptions{})
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	key := p256(t)
	for _, tc := range []struct {
		name string
		req  *pb.CertifyRequest
		code codes.Code
	}{
		{"wrong audience", &pb.CertifyRequest{Identity: id, Token: []byte(wrongAud), CertificateSigningRequest: csr(t, key, id)}, codes.Unauthenticated},
		{"garbage token", &pb.CertifyRequest{Identity: id, Token: []byte("not-a-jwt"), CertificateSigningRequest: csr(t, key, id)}, codes.Unauthenticated},
		{"no token", &pb.CertifyRequest{Identity: id, CertificateSigningRequest: csr(t, key, id)}, codes.Unauthenticated},
		{"another account's identity", &pb.CertifyRequest{Identity: id, Token: []byte(otherTok), CertificateSigningRequest: csr(t, key, id)}, codes.PermissionDenied},
		{"no SAN", &pb.CertifyRequest{Identity: id, Token: []byte(good), CertificateSigningRequest: csr(t, key)}, codes.InvalidArgument},
		{"two SANs", &pb.CertifyRequest{Identity: id, Token: []byte(good), CertificateSigningRequest: csr(t, key, id, "x.example")}, codes.InvalidArgument},
		{"SAN differs from identity", &pb.CertifyRequest{Identity: id, Token: []byte(good), CertificateSigningRequest: csr(t, key, e.svc.Identity(ns, "other"))}, codes.InvalidArgument},
		{"malformed DER", &pb.CertifyRequest{Identity: id, Token: []byte(good), CertificateSigningRequest: []byte{0x30, 0x03, 1, 2, 3}}, codes.InvalidArgument},
		{"Ed25519 key", &pb.CertifyRequest{Identity: id, Token: []byte(good), CertificateSigningRequest: csr(t, edKey, id)}, codes.InvalidArgument},
		{"P-384 key", &pb.CertifyRequest{Identity: id, Token: []byte(good), CertificateSigningRequest: csr(t, p384, id)}, codes.InvalidArgument},
		{"identity of another trust domain", &pb.CertifyRequest{Identity: "web." + ns + ".serviceaccount.identity.linkerd.example.org", Token: []byte(good), CertificateSigningRequest: csr(t, key, id)}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.Certify(t.Context(), tc.req)
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
			if status.Convert(err).Message() == "" {
				t.Fatal("refusal without a message")
			}
		})
	}
	// The good request still works.
	if _, err := e.client.Certify(t.Context(), &pb.CertifyRequest{Identity: id, Token: []byte(good), CertificateSigningRequest: csr(t, key, id)}); err != nil {
		t.Fatal(err)
	}
}

func TestIssuerRotationWithoutFailedRequests(t *testing.T) {
	e := startEnv(t)
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	id := e.svc.Identity(ns, "web")
	token := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	key := p256(t)
	req := &pb.CertifyRequest{Identity: id, Token: []byte(token), CertificateSigningRequest: csr(t, key, id)}
	first, err := e.client.Certify(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	oldIssuer := verify(t, first, id, e.anchor).Issuer.String()

	// Keep certifying during the switch: no call may fail.
	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for ctx.Err() == nil {
			if _, err := e.client.Certify(ctx, req); err != nil && ctx.Err() == nil {
				errs <- err
				return
			}
		}
	}()
	newIss, err := e.anchor.NewIssuer("issuer-2.linkerd.cluster.local", certs.ValidFor(time.Now(), 48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sec := issuerSecret(t, e.cpNS, newIss)
	sec.ResourceVersion = ""
	if _, err := e.c.Client().CoreV1().Secrets(e.cpNS).Update(t.Context(), sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := e.client.Certify(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		leaf := verify(t, resp, id, e.anchor)
		if leaf.Issuer.CommonName == "issuer-2.linkerd.cluster.local" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still issuing from %s after the Secret changed", oldIssuer)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	cancel()
	if err := <-errs; err != nil {
		t.Fatalf("a Certify call failed during rotation: %v", err)
	}

	// A bad new issuer (signed by an unrelated anchor) is refused; the current one stays.
	rogue, _ := certs.NewTrustAnchor("rogue", certs.ValidFor(time.Now(), time.Hour))
	rogueIss, _ := rogue.NewIssuer("rogue-issuer", certs.ValidFor(time.Now(), time.Hour))
	bad := issuerSecret(t, e.cpNS, rogueIss)
	if _, err := e.c.Client().CoreV1().Secrets(e.cpNS).Update(t.Context(), bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		evs, err := e.c.Client().CoreV1().Events(e.cpNS).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range evs.Items {
			if ev.Reason == "IssuerUpdateRefused" {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no IssuerUpdateRefused event for an issuer that does not chain to the anchor")
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := e.client.Certify(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if leaf := verify(t, resp, id, e.anchor); leaf.Issuer.CommonName != "issuer-2.linkerd.cluster.local" {
		t.Fatalf("issuer after a refused update = %s", leaf.Issuer.CommonName)
	}
}

// FuzzValidate feeds arbitrary identities and CSRs to the request validation: it must
// return a status error or accept, never panic, and only accept a CSR naming the identity.
func FuzzValidate(f *testing.F) {
	svc := certify.New(certify.Options{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id := svc.Identity("ns", "web")
	good := csr(f, key, id)
	f.Add(id, []byte("tok"), good)
	f.Add("web.ns.serviceaccount.identity.linkerd.cluster.local", []byte{}, []byte{0x30})
	f.Add("..serviceaccount.identity.linkerd.cluster.local", []byte("t"), good)
	f.Fuzz(func(t *testing.T, identity string, token, der []byte) {
		ns, sa, err := svc.Validate(&pb.CertifyRequest{Identity: identity, Token: token, CertificateSigningRequest: der})
		if err != nil {
			if _, ok := status.FromError(err); !ok {
				t.Fatalf("not a gRPC status: %v", err)
			}
			return
		}
		if svc.Identity(ns, sa) != identity {
			t.Fatalf("accepted %q as %s/%s", identity, ns, sa)
		}
		parsed, err := x509.ParseCertificateRequest(der)
		if err != nil || len(parsed.DNSNames) != 1 || parsed.DNSNames[0] != identity {
			t.Fatalf("accepted a CSR that does not name %q", identity)
		}
	})
}
