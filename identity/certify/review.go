package certify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultMaxConcurrentReviews bounds TokenReviews in flight, so that a burst of pod
// starts queues here instead of flooding the API server.
const DefaultMaxConcurrentReviews = 16

// ReviewOptions configures a TokenReviewer.
type ReviewOptions struct {
	// Audience is the audience projected tokens are minted for (TokenAudience).
	Audience string
	// RequireAudience refuses tokens that were not minted for Audience. When false (as
	// in Linkerd), a token whose aud claim does not name Audience, such as a pod's
	// default ServiceAccount token, is reviewed for the API server's own audiences.
	RequireAudience bool
	// MaxConcurrent bounds reviews in flight; DefaultMaxConcurrentReviews when <= 0.
	MaxConcurrent int
	// MaxConcurrentPerPeer bounds the reviews in flight for one caller (see
	// LocalProxies), so that one caller cannot hold every slot; half of MaxConcurrent (at
	// least 1) when <= 0, at most MaxConcurrent.
	MaxConcurrentPerPeer int
	// MaxWaiting bounds callers waiting for a slot, all callers together;
	// DefaultMaxWaitingReviews when <= 0. A caller beyond it gets ErrOverloaded at once.
	MaxWaiting int
	// MaxWaitingPerPeer bounds one caller's calls waiting for a slot;
	// DefaultMaxWaitingPerPeer when <= 0. A call beyond it gets ErrOverloaded at once.
	MaxWaitingPerPeer int
	// LocalProxies are the addresses of proxies that forward every caller from their own
	// address; DefaultLocalProxies when nil. A call from elsewhere is one caller's by its
	// IP address; a call from a local proxy is one caller's by the identity it requests
	// (see Caller).
	LocalProxies []netip.Prefix
	// Metrics, when set, observe review latency.
	Metrics *Metrics
}

// TokenReviewer checks tokens with the Kubernetes TokenReview API, with at most a fixed
// number of reviews in flight. Slots are shared fairly among callers (see Caller): one
// caller holds at most MaxConcurrentPerPeer of them, further requests wait (until their
// context ends) in a bounded queue per caller, and freed slots go to the waiting callers
// in turn, so a flood of calls from one address, or under one claimed identity through
// the identity pod's own proxy (forged tokens, say), cannot starve the proxies of others.
//
// Behind a local proxy the caller is the identity requested, which the token's
// unverified claims name (Service checks that before any review): a flood under one
// name gets that name's share, but a flood spread over many names, each its own caller,
// is bounded only by MaxWaiting and MaxConcurrent in all. Proxies of the flooded
// identity itself share its slots with the flood until the reviews refuse it.
type TokenReviewer struct {
	client kubernetes.Interface
	o      ReviewOptions
	q      *fairQueue
}

// NewTokenReviewer returns a reviewer using client.
func NewTokenReviewer(client kubernetes.Interface, o ReviewOptions) *TokenReviewer {
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrentReviews
	}
	if o.MaxConcurrentPerPeer <= 0 {
		o.MaxConcurrentPerPeer = max(1, o.MaxConcurrent/2)
	}
	o.MaxConcurrentPerPeer = min(o.MaxConcurrentPerPeer, o.MaxConcurrent)
	if o.MaxWaiting <= 0 {
		o.MaxWaiting = DefaultMaxWaitingReviews
	}
	if o.MaxWaitingPerPeer <= 0 {
		o.MaxWaitingPerPeer = DefaultMaxWaitingPerPeer
	}
	if o.LocalProxies == nil {
		o.LocalProxies = DefaultLocalProxies
	}
	r := &TokenReviewer{client: client, o: o}
	shed := func(string) {}
	if o.Metrics != nil {
		shed = func(reason string) { o.Metrics.shed.WithLabelValues(reason).Inc() }
	}
	r.q = newFairQueue(o.MaxConcurrent, o.MaxConcurrentPerPeer, o.MaxWaiting, o.MaxWaitingPerPeer, shed)
	if o.Metrics != nil {
		o.Metrics.setQueue(r.q)
	}
	return r
}

// Review implements Reviewer. It returns an error wrapping ErrOverloaded, without a
// review, when the caller (see Caller) or everyone already has too many calls waiting.
func (r *TokenReviewer) Review(ctx context.Context, token, identity string) (string, error) {
	var audiences []string
	if r.o.RequireAudience || slices.Contains(TokenAudiences(token), r.o.Audience) {
		audiences = []string{r.o.Audience}
	}
	start := time.Now()
	key := Caller(ctx, identity, r.o.LocalProxies)
	if err := r.q.acquire(ctx, key); err != nil {
		return "", err
	}
	defer r.q.release(key)
	tr := &authv1.TokenReview{Spec: authv1.TokenReviewSpec{Token: token, Audiences: audiences}}
	res, err := r.client.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	if r.o.Metrics != nil {
		r.o.Metrics.review.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return "", fmt.Errorf("TokenReview: %w", err)
	}
	st := res.Status
	switch {
	case !st.Authenticated && st.Error != "":
		return "", fmt.Errorf("%w: %s", ErrUnauthenticated, st.Error)
	case !st.Authenticated && audiences == nil:
		return "", fmt.Errorf("%w: not a valid token for the Kubernetes API audiences, and not minted for audience %q", ErrUnauthenticated, r.o.Audience)
	case !st.Authenticated:
		return "", fmt.Errorf("%w for audience %q", ErrUnauthenticated, r.o.Audience)
	case audiences != nil && !slices.Contains(st.Audiences, r.o.Audience):
		// An authenticator that ignores audiences would accept any token; the review
		// must confirm the audience it was asked about.
		return "", fmt.Errorf("%w: the TokenReview did not confirm audience %q (got %q)", ErrUnauthenticated, r.o.Audience, st.Audiences)
	}
	return st.User.Username, nil
}

// TokenAudiences returns the aud claim of a JWT without verifying the token: it only
// decides which audience to ask the TokenReview about, never whether the token is
// accepted. Anything that is not a JWT with a string or string-list aud yields nil.
func TokenAudiences(token string) []string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > 64<<10 {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil
	}
	var claims struct {
		Aud json.RawMessage `json:"aud"`
	}
	if json.Unmarshal(payload, &claims) != nil || len(claims.Aud) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(claims.Aud, &one) == nil {
		return []string{one}
	}
	var many []string
	if json.Unmarshal(claims.Aud, &many) == nil {
		return many
	}
	return nil
}
