package certify_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/l5d-go/l5d/identity/certify"
	"github.com/l5d-go/l5d/identity/issuer"
	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/rpc"
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
	metrics *certify.Metrics
	store   *issuer.Store
	addr    string // the gRPC server's address
	// publish replaces the issuer the way the chosen source sees it: an update of the
	// Secret through the API, or the kubelet's atomic rewrite of the mounted files.
	publish func(t testing.TB, a *certs.Authority)
}

// envOptions choose how the service under test is put together.
type envOptions struct {
	source          string // "api" (watch the Secret) or "files" (the mounted Secret); "files" when empty
	localReview     bool   // accept every token as the requested identity's without a TokenReview (benchmark baseline)
	requireAudience bool
	reviewClient    kubernetes.Interface // client for TokenReviews; the cluster's when nil
	maxReviews      int
	maxPerPeer      int // reviews in flight per peer
	maxWaitPerPeer  int // callers waiting per peer
	localProxies    []netip.Prefix
}

func issuerPEM(t testing.TB, a *certs.Authority) (crt, key []byte) {
	t.Helper()
	key, err := certs.EncodePrivateKeyPEM(a.Key)
	if err != nil {
		t.Fatal(err)
	}
	return certs.EncodeCertificatesPEM(append([]*x509.Certificate{a.Cert}, a.Chain...)...), key
}

func issuerSecret(t testing.TB, ns string, a *certs.Authority) *corev1.Secret {
	t.Helper()
	crt, key := issuerPEM(t, a)
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: issuer.DefaultSecretName, Namespace: ns},
		Data:       map[string][]byte{"crt.pem": crt, "key.pem": key},
	}
}

// writeMounted lays the issuer out as the kubelet does for a Secret volume: a new
// timestamped directory swapped in through the ..data symlink.
func writeMounted(t testing.TB, dir string, a *certs.Authority) {
	t.Helper()
	crt, key := issuerPEM(t, a)
	ts, err := os.MkdirTemp(dir, "..ts-")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"crt.pem": crt, "key.pem": key} {
		if err := os.WriteFile(filepath.Join(ts, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func startEnv(t testing.TB, o envOptions) *env {
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
	anchorsPEM := certs.EncodeCertificatesPEM(anchor.Cert)
	store := &issuer.Store{}
	events := &issuer.EventRecorder{Client: c.Client(), Namespace: cpNS, SecretName: issuer.DefaultSecretName, Component: "identity-test"}
	e := &env{c: c, cpNS: cpNS, anchor: anchor, store: store}
	switch o.source {
	case "api":
		if _, err := c.Client().CoreV1().Secrets(cpNS).Create(ctx, issuerSecret(t, cpNS, iss), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: issuer.DefaultTrustRootsMap, Namespace: cpNS},
			Data: map[string]string{issuer.TrustRootsKey: string(anchorsPEM)}}
		if _, err := c.Client().CoreV1().ConfigMaps(cpNS).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		w := &issuer.Watcher{Client: c.Client(), Namespace: cpNS, Store: store, Log: quiet, Events: events}
		if err := w.Start(ctx, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		e.publish = func(t testing.TB, a *certs.Authority) {
			if _, err := c.Client().CoreV1().Secrets(cpNS).Update(t.Context(), issuerSecret(t, cpNS, a), metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	case "files", "":
		dir := t.TempDir()
		anchorsFile := filepath.Join(t.TempDir(), issuer.TrustRootsKey)
		if err := os.WriteFile(anchorsFile, anchorsPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		writeMounted(t, dir, iss)
		w := &issuer.FileWatcher{Dir: dir, TrustAnchorsFile: anchorsFile, Source: "Secret " + cpNS + "/" + issuer.DefaultSecretName,
			Interval: 20 * time.Millisecond, Store: store, Log: quiet, Events: events}
		if err := w.Start(ctx, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		e.publish = func(t testing.TB, a *certs.Authority) { writeMounted(t, dir, a) }
	default:
		t.Fatalf("unknown source %q", o.source)
	}
	e.metrics = certify.NewMetrics()
	rc := o.reviewClient
	if rc == nil {
		rc = c.Client()
	}
	var reviewer certify.Reviewer = certify.NewTokenReviewer(rc, certify.ReviewOptions{Audience: certify.TokenAudience,
		RequireAudience: o.requireAudience, MaxConcurrent: o.maxReviews, Metrics: e.metrics,
		MaxConcurrentPerPeer: o.maxPerPeer, MaxWaitingPerPeer: o.maxWaitPerPeer, LocalProxies: o.localProxies})
	if o.localReview {
		reviewer = trustingReviewer{}
	}
	e.svc = certify.New(certify.Options{Issuer: store, ControllerNS: cpNS, Metrics: e.metrics, Reviewer: reviewer, Log: quiet})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The gRPC server the identity command runs (interceptors, limits), as it builds it.
	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: quiet, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	gs := srv.GRPC
	pb.RegisterIdentityServer(gs, e.svc)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	e.addr = ln.Addr().String()
	e.client = e.clientFrom(t, "")
	return e
}

// clientFrom returns a client whose connections come from the loopback address src
// (127.0.0.2 and so on are loopback too), so that the server sees a distinct peer; the
// kernel picks the source when src is empty.
func (e *env) clientFrom(t testing.TB, src string) pb.IdentityClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if src != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}))
	}
	cc, err := grpc.NewClient(e.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewIdentityClient(cc)
}

var quiet = slog.New(slog.DiscardHandler)

// trustingReviewer believes every token belongs to the ServiceAccount of the identity
// asked for (<sa>.<ns>.serviceaccount.identity...), without a TokenReview (benchmarks).
type trustingReviewer struct{}

func (trustingReviewer) Review(ctx context.Context, token, identity string) (string, error) {
	parts := strings.SplitN(identity, ".", 3)
	if len(parts) < 3 {
		return "", fmt.Errorf("trustingReviewer: identity %q names no ServiceAccount", identity)
	}
	return "system:serviceaccount:" + parts[1] + ":" + parts[0], nil
}

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

// verify checks that resp is a leaf for id chaining to anchor, usable for both server and
// client TLS, valid for 24h with 20s of clock-skew allowance on either side.
func verify(t *testing.T, resp *pb.CertifyResponse, id string, anchor *certs.Authority) *x509.Certificate {
	t.Helper()
	received := time.Now()
	leaf, err := x509.ParseCertificate(resp.GetLeafCertificate())
	if err != nil {
		t.Fatalf("leaf is not DER: %v", err)
	}
	inter, err := certs.ParseCertificatesDER(resp.GetIntermediateCertificates()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if err := certs.VerifyChain(leaf, inter, []*x509.Certificate{anchor.Cert}, received, usage); err != nil {
			t.Fatalf("leaf does not verify against the anchor for usage %v: %v", usage, err)
		}
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != id || leaf.Subject.CommonName != id {
		t.Fatalf("leaf SANs = %v, CN = %q, want [%s]", leaf.DNSNames, leaf.Subject.CommonName, id)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life != 24*time.Hour+40*time.Second {
		t.Fatalf("leaf lifetime %s, want 24h plus 20s of skew either side", life)
	}
	if back := received.Sub(leaf.NotBefore); back < 19*time.Second || back > 20*time.Second+time.Minute {
		t.Fatalf("NotBefore %s is %s before the response, want it backdated by the 20s skew allowance", leaf.NotBefore, back)
	}
	if !resp.GetValidUntil().AsTime().Equal(leaf.NotAfter) {
		t.Fatalf("valid_until %s != NotAfter %s", resp.GetValidUntil().AsTime(), leaf.NotAfter)
	}
	return leaf
}

func certifyReq(id, token string, csrDER []byte) *pb.CertifyRequest {
	return &pb.CertifyRequest{Identity: id, Token: []byte(token), CertificateSigningRequest: csrDER}
}

func TestCertifyWithPodBoundToken(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOptions{})
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	e.c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: ns},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "app"}}}})
	token := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}, Pod: "web-0"})
	id := e.svc.Identity(ns, "web")
	key := p256(t)
	resp, err := e.client.Certify(t.Context(), certifyReq(id, token, csr(t, key, id)))
	if err != nil {
		t.Fatal(err)
	}
	if leaf := verify(t, resp, id, e.anchor); !key.PublicKey.Equal(leaf.PublicKey) {
		t.Fatal("the leaf does not certify the CSR's key")
	}
	if got := testutil.ToFloat64(e.metrics.Issued()); got != 1 {
		t.Fatalf("identity_certificates_issued_total = %v, want 1", got)
	}

	// Once the pod is gone its bound token no longer authenticates.
	if err := e.c.Client().CoreV1().Pods(ns).Delete(t.Context(), "web-0", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := e.client.Certify(t.Context(), certifyReq(id, token, csr(t, p256(t), id)))
		if status.Code(err) == codes.Unauthenticated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token of a deleted pod still accepted: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestCertifyRefusals(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOptions{})
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	e.c.CreateServiceAccount(t, ns, "other")
	id := e.svc.Identity(ns, "web")
	good := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	otherTok := e.c.Token(t, ns, "other", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	wrongAud := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{"vault.example.com"}})
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("not the signature"))
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	key := p256(t)
	for _, tc := range []struct {
		name   string
		req    *pb.CertifyRequest
		code   codes.Code
		reason string
		says   string
	}{
		{"wrong audience", certifyReq(id, wrongAud, csr(t, key, id)), codes.Unauthenticated, certify.ReasonBadToken, "token"},
		{"garbage token", certifyReq(id, "not-a-jwt", csr(t, key, id)), codes.Unauthenticated, certify.ReasonMalformedToken, "not a JWT"},
		{"forged signature", certifyReq(id, forged, csr(t, key, id)), codes.Unauthenticated, certify.ReasonBadToken, "token"},
		{"no token", certifyReq(id, "", csr(t, key, id)), codes.Unauthenticated, certify.ReasonBadToken, "no token"},
		{"another account's token", certifyReq(id, otherTok, csr(t, key, id)), codes.Unauthenticated, certify.ReasonTokenForOtherIdentity, "system:serviceaccount:" + ns + ":other"},
		{"no SAN", certifyReq(id, good, csr(t, key)), codes.InvalidArgument, certify.ReasonBadCSR, "certificate signing request"},
		{"two SANs", certifyReq(id, good, csr(t, key, id, "x.example")), codes.InvalidArgument, certify.ReasonBadCSR, "certificate signing request"},
		{"SAN differs from identity", certifyReq(id, good, csr(t, key, e.svc.Identity(ns, "other"))), codes.InvalidArgument, certify.ReasonBadCSR, "not the requested identity"},
		{"malformed DER", certifyReq(id, good, []byte{0x30, 0x03, 1, 2, 3}), codes.InvalidArgument, certify.ReasonBadCSR, "certificate signing request"},
		{"Ed25519 key", certifyReq(id, good, csr(t, edKey, id)), codes.InvalidArgument, certify.ReasonBadCSR, "Ed25519"},
		{"P-384 key", certifyReq(id, good, csr(t, p384, id)), codes.InvalidArgument, certify.ReasonBadCSR, "P-384"},
		{"RSA 1024 key", certifyReq(id, good, csr(t, rsa1024, id)), codes.InvalidArgument, certify.ReasonBadCSR, "RSA key of 1024 bits"},
		{"identity of another trust domain", certifyReq("web."+ns+".serviceaccount.identity.linkerd.example.org", good, csr(t, key, id)), codes.InvalidArgument, certify.ReasonBadIdentity, "does not end in"},
		{"identity with a name longer than a DNS label", certifyReq(strings.Repeat("w", 64)+"."+ns+".serviceaccount.identity."+e.cpNS+".cluster.local", good, csr(t, key, id)), codes.InvalidArgument, certify.ReasonBadIdentity, "not a DNS label"},
		{"identity without a namespace", certifyReq("web.serviceaccount.identity."+e.cpNS+".cluster.local", good, csr(t, key, id)), codes.InvalidArgument, certify.ReasonBadIdentity, "identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(e.metrics.Refused(tc.reason))
			_, err := e.client.Certify(t.Context(), tc.req)
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.says) {
				t.Fatalf("message %q does not say %q", msg, tc.says)
			}
			if got := testutil.ToFloat64(e.metrics.Refused(tc.reason)); got != before+1 {
				t.Fatalf("identity_certify_refused_total{reason=%q} went from %v to %v", tc.reason, before, got)
			}
		})
	}
	// The good request still works.
	if _, err := e.client.Certify(t.Context(), certifyReq(id, good, csr(t, key, id))); err != nil {
		t.Fatal(err)
	}
	// RSA keys of 2048 bits are accepted.
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := e.client.Certify(t.Context(), certifyReq(id, good, csr(t, rsa2048, id))); err != nil {
		t.Fatalf("RSA 2048 refused: %v", err)
	}
}

// TestTokenAudiences checks Linkerd's audience rule: a token minted for identity.l5d.io is
// reviewed for that audience; a token without it (a pod's default ServiceAccount token,
// as older proxies send) is reviewed for the API server's audiences, unless the service
// requires the identity audience.
func TestTokenAudiences(t *testing.T) {
	t.Parallel()
	lenient := startEnv(t, envOptions{})
	strict := startEnv(t, envOptions{requireAudience: true})
	ns := lenient.c.Namespace(t)
	lenient.c.CreateServiceAccount(t, ns, "web")
	apiAud := lenient.c.Token(t, ns, "web", kube.TokenOptions{})
	both := lenient.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{"vault.example.com", certify.TokenAudience}})
	for _, tc := range []struct {
		name  string
		e     *env
		token string
		code  codes.Code
	}{
		{"API-audience token, lenient", lenient, apiAud, codes.OK},
		{"API-audience token, -require-token-audience", strict, apiAud, codes.Unauthenticated},
		{"token for several audiences including identity.l5d.io", lenient, both, codes.OK},
		{"token for several audiences including identity.l5d.io, strict", strict, both, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.e.svc.Identity(ns, "web")
			resp, err := tc.e.client.Certify(t.Context(), certifyReq(id, tc.token, csr(t, p256(t), id)))
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
			if err == nil {
				verify(t, resp, id, tc.e.anchor)
			}
		})
	}
}

// TestExpiredIssuerIsUnavailable: once the issuer in use has expired (nobody rotated the
// Secret), Certify says so instead of signing certificates nobody can verify.
func TestExpiredIssuerIsUnavailable(t *testing.T) {
	t.Parallel()
	e := startEnv(t, envOptions{})
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	later := func() time.Time { return time.Now().Add(2 * 365 * 24 * time.Hour) }
	svc := certify.New(certify.Options{Issuer: e.store, ControllerNS: e.cpNS, Log: quiet, Now: later,
		Reviewer: certify.NewTokenReviewer(e.c.Client(), certify.ReviewOptions{Audience: certify.TokenAudience})})
	id := svc.Identity(ns, "web")
	token := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	_, err := svc.Certify(t.Context(), certifyReq(id, token, csr(t, p256(t), id)))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("got %v, want Unavailable saying the issuer expired", err)
	}
}

func TestAPIServerUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	// A loopback port with nothing listening stands for an unreachable API server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dead, err := kubernetes.NewForConfig(&rest.Config{Host: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, envOptions{reviewClient: dead})
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	id := e.svc.Identity(ns, "web")
	token := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	_, err = e.client.Certify(t.Context(), certifyReq(id, token, csr(t, p256(t), id)))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "Kubernetes API") {
		t.Fatalf("got %v, want Unavailable naming the Kubernetes API", err)
	}
}

// inflightCounter counts TokenReview requests in flight to the API server and their peak.
type inflightCounter struct {
	next      http.RoundTripper
	cur, peak *atomic.Int64
	total     *atomic.Int64
}

func (c inflightCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(r.URL.Path, "/tokenreviews") {
		return c.next.RoundTrip(r)
	}
	c.total.Add(1)
	n := c.cur.Add(1)
	defer c.cur.Add(-1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return c.next.RoundTrip(r)
}

// TestTokenReviewsAreBounded: a burst of Certify calls all succeed while the API server
// never sees more TokenReviews at once than the configured bound.
func TestTokenReviewsAreBounded(t *testing.T) {
	t.Parallel()
	c := kube.Shared(t)
	var cur, peak, total atomic.Int64
	cfg := rest.CopyConfig(c.RESTConfig())
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return inflightCounter{next: rt, cur: &cur, peak: &peak, total: &total}
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const bound, burst = 2, 40
	// The burst comes from one address (this test's), so its per-peer bounds allow it all.
	e := startEnv(t, envOptions{reviewClient: client, maxReviews: bound, maxPerPeer: bound, maxWaitPerPeer: burst})
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	id := e.svc.Identity(ns, "web")
	token := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	req := certifyReq(id, token, csr(t, p256(t), id))
	errs := make(chan error, burst)
	for range burst {
		go func() {
			_, err := e.client.Certify(t.Context(), req)
			errs <- err
		}()
	}
	for range burst {
		if err := <-errs; err != nil {
			t.Fatalf("Certify during the burst: %v", err)
		}
	}
	if total.Load() != burst {
		t.Fatalf("%d TokenReviews for %d calls", total.Load(), burst)
	}
	if p := peak.Load(); p > bound {
		t.Fatalf("%d TokenReviews in flight at once, bound is %d", p, bound)
	}
}

func TestIssuerRotationWithoutFailedRequests(t *testing.T) {
	t.Parallel()
	for _, source := range []string{"files", "api"} {
		t.Run(source, func(t *testing.T) { testRotation(t, source) })
	}
}

func testRotation(t *testing.T, source string) {
	e := startEnv(t, envOptions{source: source})
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	id := e.svc.Identity(ns, "web")
	token := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	req := certifyReq(id, token, csr(t, p256(t), id))
	first, err := e.client.Certify(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	oldIssuer := verify(t, first, id, e.anchor).Issuer.String()

	// Keep certifying during the switch: no call may fail.
	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 1)
	var during atomic.Int64
	go func() {
		defer close(errs)
		for ctx.Err() == nil {
			if _, err := e.client.Certify(ctx, req); err != nil {
				if ctx.Err() == nil {
					errs <- err
				}
				return
			}
			during.Add(1)
		}
	}()
	// The switch starts once the background calls do (a fast source may otherwise
	// complete it before the first of them).
	for wait := time.Now().Add(30 * time.Second); during.Load() == 0; {
		select {
		case err := <-errs:
			t.Fatalf("background Certify before the rotation: %v", err)
		default:
		}
		if time.Now().After(wait) {
			t.Fatal("no background Certify call completed")
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
	newIss, err := e.anchor.NewIssuer("issuer-2.linkerd.cluster.local", certs.ValidFor(time.Now(), 48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	e.publish(t, newIss)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := e.client.Certify(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		leaf := verify(t, resp, id, e.anchor)
		if leaf.Issuer.CommonName == "issuer-2.linkerd.cluster.local" {
			if len(resp.IntermediateCertificates) == 0 || !bytes.Equal(resp.IntermediateCertificates[0], newIss.Cert.Raw) {
				t.Fatal("response after rotation does not carry the new issuer")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still issuing from %s after the Secret changed", oldIssuer)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
	cancel()
	if err := <-errs; err != nil {
		t.Fatalf("a Certify call failed during rotation: %v", err)
	}
	if during.Load() == 0 {
		t.Fatal("no Certify call ran during the rotation")
	}

	// A bad new issuer (signed by an unrelated anchor) is refused with an Event; the
	// current one stays.
	rogue, _ := certs.NewTrustAnchor("rogue", certs.ValidFor(time.Now(), time.Hour))
	rogueIss, _ := rogue.NewIssuer("rogue-issuer", certs.ValidFor(time.Now(), time.Hour))
	e.publish(t, rogueIss)
	deadline = time.Now().Add(30 * time.Second)
	for {
		evs, err := e.c.Client().CoreV1().Events(e.cpNS).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var refused *corev1.Event
		for i, ev := range evs.Items {
			if ev.Reason == issuer.ReasonIssuerUpdateRefused {
				refused = &evs.Items[i]
			}
		}
		if refused != nil {
			if refused.InvolvedObject.Name != issuer.DefaultSecretName || !strings.Contains(refused.Message, "rogue-issuer") {
				t.Fatalf("refusal event on %s says %q", refused.InvolvedObject.Name, refused.Message)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no IssuerUpdateRefused event for an issuer that does not chain to the anchor")
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
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
	f.Add(id, []byte("tok"), good, true)
	f.Add(id, []byte("tok"), good, false)
	f.Add("web.ns.serviceaccount.identity.linkerd.cluster.local", []byte{}, []byte{0x30}, true)
	f.Add("..serviceaccount.identity.linkerd.cluster.local", []byte("t"), good, false)
	f.Fuzz(func(t *testing.T, identity string, token, der []byte, mint bool) {
		// mint replaces the token by a well-formed one whose claims name the identity's
		// account, so that the CSR checks after the token's are reached.
		if ns, sa, err := svc.ParseIdentity(identity); mint && err == nil {
			token = []byte(jwt(t, map[string]any{"alg": "RS256"}, saClaims(ns, sa, time.Now().Add(time.Hour)), string(token)+"s"))
		}
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

// FuzzTokenAudiences feeds arbitrary tokens to the unverified aud peek: it must never
// panic, and a well-formed token must yield exactly the audiences it carries.
func FuzzTokenAudiences(f *testing.F) {
	enc := base64.RawURLEncoding.EncodeToString
	f.Add("eyJhbGciOiJSUzI1NiJ9."+enc([]byte(`{"aud":["identity.l5d.io"]}`))+".sig", "identity.l5d.io")
	f.Add("h."+enc([]byte(`{"aud":"identity.l5d.io"}`))+".s", "x")
	f.Add("h."+enc([]byte(`{"aud":[1,2]}`))+".s", "")
	f.Add("not-a-jwt", "a")
	f.Add("a.b.c.d", "b")
	f.Fuzz(func(t *testing.T, token, aud string) {
		certify.TokenAudiences(token)
		payload, err := json.Marshal(map[string]any{"aud": []string{aud}, "sub": "x"})
		if err != nil {
			t.Skip()
		}
		// json.Marshal replaces invalid UTF-8, so compare with what was encoded.
		var want struct{ Aud []string }
		if err := json.Unmarshal(payload, &want); err != nil {
			t.Fatal(err)
		}
		if got := certify.TokenAudiences("h." + enc(payload) + ".s"); len(got) != 1 || got[0] != want.Aud[0] {
			t.Fatalf("aud %q read back as %q", want.Aud[0], got)
		}
	})
}
