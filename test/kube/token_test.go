package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/pkg/eventually"
)

// review asks the API server who token belongs to, for audiences.
func review(t *testing.T, c *Cluster, token string, audiences []string) authenticationv1.TokenReviewStatus {
	t.Helper()
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: audiences}}
	got, err := c.Client().AuthenticationV1().TokenReviews().Create(context.Background(), tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenReview: %v", err)
	}
	return got.Status
}

func TestTokenReviewChecksAudience(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	ns := c.Namespace(t)
	c.CreateServiceAccount(t, ns, "web")
	const audience = "identity.l5d.cluster.local"
	token := c.Token(t, ns, "web", TokenOptions{Audiences: []string{audience}, Expiry: 20 * time.Minute})

	tests := []struct {
		name      string
		token     string
		audiences []string
		wantAuth  bool
	}{
		{"requested audience", token, []string{audience}, true},
		{"wrong audience", token, []string{"someone-else"}, false},
		{"API server audience", token, nil, false},
		{"API server token", c.Token(t, ns, "web", TokenOptions{}), nil, true},
		{"garbage", "not-a-jwt", []string{audience}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := review(t, c, tt.token, tt.audiences)
			if st.Authenticated != tt.wantAuth {
				t.Fatalf("authenticated = %v, want %v (error %q)", st.Authenticated, tt.wantAuth, st.Error)
			}
			if !tt.wantAuth {
				return
			}
			if want := "system:serviceaccount:" + ns + ":web"; st.User.Username != want {
				t.Errorf("user = %q, want %q", st.User.Username, want)
			}
			if len(tt.audiences) > 0 && !slices.Equal(st.Audiences, tt.audiences) {
				t.Errorf("audiences = %v, want %v", st.Audiences, tt.audiences)
			}
		})
	}
}

func TestPodBoundTokenDiesWithPod(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	ns := c.Namespace(t)
	c.CreateServiceAccount(t, ns, "web")
	pod := c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: ns},
		Spec: corev1.PodSpec{ServiceAccountName: "web"}})
	const audience = "identity.l5d.cluster.local"
	// Two tokens for the same pod: the API server caches a successful review for 10s, so
	// the one checked after the deletion must never have been reviewed before.
	token := c.Token(t, ns, "web", TokenOptions{Audiences: []string{audience}, Pod: pod.Name})
	unseen := c.Token(t, ns, "web", TokenOptions{Audiences: []string{audience}, Pod: pod.Name})

	st := review(t, c, token, []string{audience})
	if !st.Authenticated {
		t.Fatalf("token bound to a live pod rejected: %s", st.Error)
	}
	if got := st.User.Extra["authentication.kubernetes.io/pod-name"]; !slices.Equal(got, authenticationv1.ExtraValue{pod.Name}) {
		t.Errorf("pod-name extra = %v, want [%s]", got, pod.Name)
	}
	if err := c.Client().CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The authenticator reads pods through an informer: poll until it has seen the deletion.
	// Each poll adds a distinct extra audience, so no poll hits a cached success of another.
	attempt := 0
	eventually.NoErrorWithin(t, 30*time.Second, "the token of a deleted pod to be rejected", func() error {
		attempt++
		if st := review(t, c, unseen, []string{audience, fmt.Sprintf("poll-%d.l5d.test", attempt)}); st.Authenticated {
			return errors.New("still authenticated")
		}
		return nil
	})
}
