package certify

import (
	"context"
	"fmt"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultMaxConcurrentReviews bounds TokenReviews in flight, so that a burst of pod
// starts queues here instead of flooding the API server.
const DefaultMaxConcurrentReviews = 16

// TokenReviewer checks tokens with the Kubernetes TokenReview API for one audience, with
// at most a fixed number of reviews in flight; further requests wait (until their
// context ends) for a slot.
type TokenReviewer struct {
	client   kubernetes.Interface
	audience string
	slots    chan struct{}
	metrics  *Metrics
}

// NewTokenReviewer returns a reviewer for audience allowing max concurrent reviews
// (DefaultMaxConcurrentReviews when max <= 0). m may be nil.
func NewTokenReviewer(client kubernetes.Interface, audience string, max int, m *Metrics) *TokenReviewer {
	if max <= 0 {
		max = DefaultMaxConcurrentReviews
	}
	return &TokenReviewer{client: client, audience: audience, slots: make(chan struct{}, max), metrics: m}
}

// Review implements Reviewer.
func (r *TokenReviewer) Review(ctx context.Context, token string) (string, error) {
	start := time.Now()
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for a TokenReview slot: %w", ctx.Err())
	}
	defer func() { <-r.slots }()
	tr := &authv1.TokenReview{Spec: authv1.TokenReviewSpec{Token: token, Audiences: []string{r.audience}}}
	res, err := r.client.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	if r.metrics != nil {
		r.metrics.review.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return "", fmt.Errorf("TokenReview: %w", err)
	}
	if res.Status.Error != "" && !res.Status.Authenticated {
		return "", fmt.Errorf("%w: %s", ErrUnauthenticated, res.Status.Error)
	}
	if !res.Status.Authenticated {
		return "", fmt.Errorf("%w for audience %q", ErrUnauthenticated, r.audience)
	}
	return res.Status.User.Username, nil
}
