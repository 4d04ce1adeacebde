package certify_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/l5d-go/l5d/identity/certify"
	"github.com/l5d-go/l5d/test/kube"
)

// TestJunkTokensCostNoTokenReview: tokens that cannot be a valid ServiceAccount token for
// the requested identity (not a JWT, oversized, expired by their own exp claim, claiming
// another ServiceAccount) are refused with Unauthenticated, saying why, without a
// TokenReview, however many arrive through the pod proxy; a valid token still costs one.
func TestJunkTokensCostNoTokenReview(t *testing.T) {
	t.Parallel()
	c := kube.Shared(t)
	var reviews atomic.Int64
	cfg := rest.CopyConfig(c.RESTConfig())
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countReviews{next: rt, n: &reviews} }
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, envOptions{reviewClient: client})
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	id := e.svc.Identity(ns, "web")
	hdr := map[string]any{"alg": "RS256"}
	legacy := map[string]any{"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:" + ns + ":web",
		"kubernetes.io/serviceaccount/namespace": ns, "kubernetes.io/serviceaccount/service-account.name": "other"}
	mismatchedKubeClaim := saClaims(ns, "web", time.Now().Add(time.Hour))
	mismatchedKubeClaim["kubernetes.io"] = map[string]any{"namespace": "kube-system", "serviceaccount": map[string]any{"name": "web"}}
	for _, tc := range []struct {
		name, token, reason, says string
	}{
		{"not a JWT", "junk-token-from-behind-the-pod-proxy", certify.ReasonMalformedToken, "not a JWT"},
		{"two parts", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0", certify.ReasonMalformedToken, "not a JWT"},
		{"claims not base64url", "eyJhbGciOiJSUzI1NiJ9.!!!.c2ln", certify.ReasonMalformedToken, "claims"},
		{"claims not a JSON object", "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(`["x"]`)) + ".c2ln", certify.ReasonMalformedToken, "claims"},
		{"header without alg", jwt(t, map[string]any{"typ": "JWT"}, saClaims(ns, "web", time.Now().Add(time.Hour)), "sig"), certify.ReasonMalformedToken, "alg"},
		{"unsigned", jwt(t, map[string]any{"alg": "none"}, saClaims(ns, "web", time.Now().Add(time.Hour)), ""), certify.ReasonMalformedToken, "signature"},
		{"oversized", jwt(t, hdr, map[string]any{"sub": "system:serviceaccount:" + ns + ":web", "pad": strings.Repeat("x", certify.MaxTokenSize)}, "sig"), certify.ReasonMalformedToken, "bytes"},
		{"exp not a number", jwt(t, hdr, map[string]any{"sub": "system:serviceaccount:" + ns + ":web", "exp": "tomorrow"}, "sig"), certify.ReasonMalformedToken, "exp"},
		{"expired", jwt(t, hdr, saClaims(ns, "web", time.Now().Add(-time.Hour)), "sig"), certify.ReasonExpiredToken, "expired"},
		{"sub of another account", jwt(t, hdr, saClaims(ns, "other", time.Now().Add(time.Hour)), "sig"), certify.ReasonTokenForOtherIdentity, "system:serviceaccount:" + ns + ":other"},
		{"kubernetes.io claim of another namespace", jwt(t, hdr, mismatchedKubeClaim, "sig"), certify.ReasonTokenForOtherIdentity, "kube-system"},
		{"legacy claim of another account", jwt(t, hdr, legacy, "sig"), certify.ReasonTokenForOtherIdentity, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(e.metrics.Refused(tc.reason))
			podProxy := e.clientFrom(t, "127.0.0.1")
			const calls = 20
			for range calls {
				_, err := podProxy.Certify(t.Context(), certifyReq(id, tc.token, csr(t, p256(t), id)))
				if status.Code(err) != codes.Unauthenticated {
					t.Fatalf("got %v, want Unauthenticated", err)
				}
				if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.says) {
					t.Fatalf("message %q does not say %q", msg, tc.says)
				}
			}
			if got := testutil.ToFloat64(e.metrics.Refused(tc.reason)); got != before+calls {
				t.Fatalf("identity_certify_refused_total{reason=%q} went from %v to %v, want +%d", tc.reason, before, got, calls)
			}
			if n := reviews.Load(); n != 0 {
				t.Fatalf("%d TokenReviews made for tokens refused by their structure or claims", n)
			}
		})
	}
	// A valid token still works and costs exactly one review.
	token := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	if _, err := e.clientFrom(t, "127.0.0.1").Certify(t.Context(), certifyReq(id, token, csr(t, p256(t), id))); err != nil {
		t.Fatal(err)
	}
	if n := reviews.Load(); n != 1 {
		t.Fatalf("%d TokenReviews for one valid token, want 1", n)
	}
}

// FuzzCheckTokenClaims: any token is checked without panicking, and a well-formed token
// whose claims name the account, under any ServiceAccount names, passes.
func FuzzCheckTokenClaims(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	f.Add(enc(map[string]any{"alg": "RS256"})+"."+enc(saClaims("ns", "web", now.Add(time.Hour)))+".c2ln", "ns", "web")
	f.Add("not-a-jwt", "a", "b")
	f.Add("a.b.c.d", "a", "b")
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjFlOTk5OX0.c2ln", "a", "b")
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOi0xZTMwMH0.c2ln", "a", "b")
	f.Fuzz(func(t *testing.T, token, ns, sa string) {
		if reason, err := certify.CheckTokenClaims(token, ns, sa, now, time.Minute); (err == nil) != (reason == "") {
			t.Fatalf("reason %q with error %v", reason, err)
		}
		if strings.ContainsAny(ns+sa, ":") {
			t.Skip() // a ServiceAccount name never has a colon; sub would be ambiguous
		}
		good := enc(map[string]any{"alg": "ES256"}) + "." + enc(saClaims(ns, sa, now.Add(time.Hour))) + ".c2ln"
		var c struct{ Sub string }
		if b, _ := json.Marshal(map[string]string{"sub": ns + sa}); json.Unmarshal(b, &c) != nil || c.Sub != ns+sa {
			t.Skip() // json.Marshal replaced invalid UTF-8: the claims name other strings
		}
		if _, err := certify.CheckTokenClaims(good, ns, sa, now, time.Minute); err != nil && len(good) <= certify.MaxTokenSize {
			t.Fatalf("claims naming %q/%q refused: %v", ns, sa, err)
		}
	})
}

// BenchmarkCheckTokenClaims is the cost of refusing or passing a token before any
// TokenReview (compare BenchmarkCertify, which includes one).
func BenchmarkCheckTokenClaims(b *testing.B) {
	now := time.Now()
	for _, tc := range []struct{ name, token string }{
		{"projected token", jwt(b, map[string]any{"alg": "RS256", "kid": "k"}, saClaims("ns", "web", now.Add(time.Hour)), strings.Repeat("s", 256))},
		{"not a JWT", "junk-token-from-behind-the-pod-proxy"},
		{"near max size", jwt(b, map[string]any{"alg": "RS256"}, map[string]any{"pad": strings.Repeat("x", certify.MaxTokenSize*3/4-200)}, "s")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				certify.CheckTokenClaims(tc.token, "ns", "web", now, time.Minute)
			}
		})
	}
}
