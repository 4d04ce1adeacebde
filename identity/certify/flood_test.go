package certify_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
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
	"github.com/l5d-go/l5d/pkg/eventually"
	pb "github.com/l5d-go/l5d/proto/gen/identity"
	"github.com/l5d-go/l5d/test/kube"
)

// holdJunk holds TokenReviews of tokens containing marker at the transport until gate
// closes (a slow or overloaded API server, as a flood makes it), counting them in held.
type holdJunk struct {
	next   http.RoundTripper
	marker []byte
	gate   <-chan struct{}
	held   *atomic.Int64
}

func (h holdJunk) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(r.URL.Path, "/tokenreviews") || r.Body == nil {
		return h.next.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if bytes.Contains(body, h.marker) {
		h.held.Add(1)
		select {
		case <-h.gate:
		case <-r.Context().Done():
		}
		h.held.Add(-1)
	}
	return h.next.RoundTrip(r)
}

// heldReviews is a Kubernetes client whose TokenReviews of tokens signed with sig the API
// server is slow to answer: they are held until release, counted in held.
type heldReviews struct {
	client kubernetes.Interface
	gate   chan struct{}
	held   atomic.Int64
}

func holdReviews(t *testing.T, c *kube.Cluster, sig string) *heldReviews {
	t.Helper()
	h := &heldReviews{gate: make(chan struct{})}
	marker := base64.RawURLEncoding.EncodeToString([]byte(sig))
	cfg := rest.CopyConfig(c.RESTConfig())
	cfg.QPS, cfg.Burst = 1000, 1000
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return holdJunk{next: rt, marker: []byte(marker), gate: h.gate, held: &h.held}
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.client = client
	return h
}

// floodShed sends n concurrent calls of req through client while h holds their reviews:
// all but perPeer+waitPerPeer must be refused at once with ResourceExhausted, and then
// perPeer reviews be held at the API server and waitPerPeer calls wait. It returns how
// many were shed and where the others' errors arrive.
func floodShed(t *testing.T, e *env, h *heldReviews, client pb.IdentityClient, req *pb.CertifyRequest, n, perPeer, waitPerPeer int) (int, <-chan error) {
	t.Helper()
	errs := make(chan error, n)
	ctx, stop := context.WithCancel(t.Context())
	t.Cleanup(stop)
	for range n {
		go func() {
			_, err := client.Certify(ctx, req)
			errs <- err
		}()
	}
	shed := n - perPeer - waitPerPeer
	for i := range shed {
		select {
		case err := <-errs:
			if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "waiting for a TokenReview") {
				t.Fatalf("flood call %d: %v, want ResourceExhausted saying too many are waiting for a TokenReview", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of the %d flood calls beyond the bounds were refused; the rest wait", i, shed)
		}
	}
	eventually.TrueWithin(t, 30*time.Second, fmt.Sprintf("%d flood reviews at the API server and %d waiting", perPeer, waitPerPeer), func() bool {
		return h.held.Load() == int64(perPeer) && testutil.ToFloat64(e.metrics.Waiting()) == float64(waitPerPeer)
	})
	if got := testutil.ToFloat64(e.metrics.Refused(certify.ReasonOverloaded)); got != float64(shed) {
		t.Errorf("identity_certify_refused_total{reason=overloaded} = %v, want %d", got, shed)
	}
	return shed, errs
}

// release lets the API server answer the held reviews: the waiting calls, whose tokens
// it does not know, must be refused as Unauthenticated.
func (h *heldReviews) release(t *testing.T, errs <-chan error, waiting int) {
	t.Helper()
	close(h.gate)
	for i := range waiting {
		if err := <-errs; status.Code(err) != codes.Unauthenticated {
			t.Fatalf("queued flood call %d: %v, want Unauthenticated", i, err)
		}
	}
}

// TestJunkTokenFloodDoesNotStarveOtherPeers: one peer (127.0.0.2) floods Certify with junk
// tokens (well-formed JWTs signed by nobody, so that they pass CheckTokenClaims) whose
// TokenReviews the API server is slow to answer. The flood holds at most its
// share of the review slots, a bounded number of its calls wait, the rest get
// ResourceExhausted at once (counted); meanwhile a proxy on another peer (127.0.0.3) gets
// its certificate, and once the API server answers, the waiting junk gets Unauthenticated.
func TestJunkTokenFloodDoesNotStarveOtherPeers(t *testing.T) {
	t.Parallel()
	const junkSig = "junk-signature-from-a-hostile-peer"
	h := holdReviews(t, kube.Shared(t), junkSig)
	const slots, perPeer, waitPerPeer, flood = 4, 2, 8, 100
	// 127.0.0.2 and 127.0.0.3 stand for callers on other hosts: only 127.0.0.1 is a local
	// proxy here.
	e := startEnv(t, envOptions{reviewClient: h.client, maxReviews: slots, maxPerPeer: perPeer, maxWaitPerPeer: waitPerPeer,
		localProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	id := e.svc.Identity(ns, "web")
	junk := jwt(t, map[string]any{"alg": "RS256"}, saClaims(ns, "web", time.Now().Add(time.Hour)), junkSig)

	// Everything beyond the peer's slots and queue is refused at once, while the API server
	// still holds the flood's reviews.
	shed, errs := floodShed(t, e, h, e.clientFrom(t, "127.0.0.2"), certifyReq(id, junk, csr(t, p256(t), id)), flood, perPeer, waitPerPeer)
	if got := testutil.ToFloat64(e.metrics.Shed(certify.ShedPeerQueueFull)); got != float64(shed) {
		t.Errorf("identity_tokenreviews_shed_total{reason=peer_queue_full} = %v, want %d", got, shed)
	}

	// A proxy on another address gets its certificate while the flood is stuck.
	token := e.c.Token(t, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, err := e.clientFrom(t, "127.0.0.3").Certify(ctx, certifyReq(id, token, csr(t, p256(t), id)))
	if err != nil {
		t.Fatalf("Certify from another peer during the flood: %v", err)
	}
	verify(t, resp, id, e.anchor)
	if h.held.Load() != perPeer {
		t.Fatalf("the flood's reviews were answered before the other peer's call: the test proves nothing")
	}

	// The API server answers the flood's reviews: the waiting junk is refused as such.
	h.release(t, errs, perPeer+waitPerPeer)
}

// countReviews counts the TokenReviews sent through it.
type countReviews struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countReviews) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/tokenreviews") {
		c.n.Add(1)
	}
	return c.next.RoundTrip(r)
}

// jwt returns a compact JWT with header and claims as given and sig as its signature
// bytes: structurally a token, but signed by nobody the API server trusts.
func jwt(t testing.TB, header, claims map[string]any, sig string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(header) + "." + enc(claims) + "." + base64.RawURLEncoding.EncodeToString([]byte(sig))
}

// saClaims are the claims of a projected ServiceAccount token for ns/sa expiring at exp.
func saClaims(ns, sa string, exp time.Time) map[string]any {
	return map[string]any{
		"iss": "https://kubernetes.default.svc.cluster.local", "aud": []string{certify.TokenAudience},
		"sub": "system:serviceaccount:" + ns + ":" + sa, "exp": exp.Unix(), "iat": time.Now().Unix(),
		"kubernetes.io": map[string]any{"namespace": ns, "serviceaccount": map[string]any{"name": sa, "uid": "0c7d1a2e-0000-4000-8000-000000000000"}},
	}
}

// TestForgedTokenFloodThroughPodProxyDoesNotStarveOthers: in a real install every caller
// reaches identity through the identity pod's own proxy, so every call comes from
// 127.0.0.1. A flood of forged ServiceAccount tokens (well-formed, unexpired, claiming the
// requested identity, signed by nobody), whose reviews the API server is slow to answer,
// takes only the claimed identity's share of the slots and queue; the rest is refused at
// once (counted); a proxy of another ServiceAccount, also from 127.0.0.1, gets its
// certificate within its deadline; once the API server answers, the waiting forgeries
// are Unauthenticated.
func TestForgedTokenFloodThroughPodProxyDoesNotStarveOthers(t *testing.T) {
	t.Parallel()
	const forgedSig = "forged-signature-from-behind-the-pod-proxy"
	h := holdReviews(t, kube.Shared(t), forgedSig)
	const slots, perPeer, waitPerPeer, flood = 4, 2, 8, 100
	e := startEnv(t, envOptions{reviewClient: h.client, maxReviews: slots, maxPerPeer: perPeer, maxWaitPerPeer: waitPerPeer})
	ns := e.c.Namespace(t)
	e.c.CreateServiceAccount(t, ns, "web")
	e.c.CreateServiceAccount(t, ns, "api")
	victim := e.svc.Identity(ns, "web")
	forged := jwt(t, map[string]any{"alg": "RS256", "kid": "forged"}, saClaims(ns, "web", time.Now().Add(time.Hour)), forgedSig)

	podProxy := e.clientFrom(t, "127.0.0.1") // the identity pod's own proxy
	_, errs := floodShed(t, e, h, podProxy, certifyReq(victim, forged, csr(t, p256(t), victim)), flood, perPeer, waitPerPeer)

	// A proxy of another ServiceAccount, through the same pod proxy, is not starved.
	id := e.svc.Identity(ns, "api")
	token := e.c.Token(t, ns, "api", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, err := podProxy.Certify(ctx, certifyReq(id, token, csr(t, p256(t), id)))
	if err != nil {
		t.Fatalf("Certify of another ServiceAccount through the pod proxy during the flood: %v", err)
	}
	verify(t, resp, id, e.anchor)
	if h.held.Load() != perPeer {
		t.Fatalf("the flood's reviews were answered before the other call: the test proves nothing")
	}

	h.release(t, errs, perPeer+waitPerPeer)
}
