package main

import (
	"context"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/test/kube"
)

// watchCounter counts the watches open through it, by resource path: a watch is open
// from the API server's 200 answer until its body is closed. (Counting requests would
// also count the watches an informer reopens, for example while a new CRD's cache
// initialises.)
type watchCounter struct {
	next http.RoundTripper
	mu   sync.Mutex
	open map[string]int
}

func (w *watchCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := w.next.RoundTrip(r)
	if err != nil || r.URL.Query().Get("watch") != "true" || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	w.add(r.URL.Path, 1)
	resp.Body = &watchBody{ReadCloser: resp.Body, done: func() { w.add(r.URL.Path, -1) }}
	return resp, nil
}

func (w *watchCounter) add(path string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.open[path] += n
	if w.open[path] == 0 {
		delete(w.open, path)
	}
}

func (w *watchCounter) counts() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.open)
}

// watchBody calls done once, when the watch's body is closed.
type watchBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *watchBody) Close() error {
	b.once.Do(b.done)
	return b.ReadCloser.Close()
}

// The policy controller's inbound and outbound indexes share one informer set: each kind
// is watched once, the route kinds both read included.
func TestPolicyWatchesEachKindOnce(t *testing.T) {
	c := kube.Shared(t)
	crds, err := os.ReadFile("../../../deploy/crds/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "", string(crds))
	for _, n := range []string{"servers", "serverauthorizations", "authorizationpolicies", "meshtlsauthentications", "networkauthentications",
		"httproutes", "httplocalratelimitpolicies", "egressnetworks"} {
		c.WaitCRD(t, n+".policy.linkerd.io")
	}
	c.ApplyGatewayAPICRDs(t, "httproutes", "grpcroutes", "tcproutes", "tlsroutes")

	cfg, err := (&k8s.Config{Kubeconfig: c.Kubeconfig()}).RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	counter := &watchCounter{open: map[string]int{}}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter }
	clients, err := k8s.NewClients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in, out, err := newIndexes(clients)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := startIndexes(ctx, in, out, time.Minute); err != nil {
		t.Fatal(err)
	}
	// What the two indexes read: pods, namespaces, Services, the five policy kinds, the
	// HTTPLocalRateLimitPolicies, EgressNetworks and the five route kinds.
	want := []string{
		"/api/v1/namespaces", "/api/v1/pods", "/api/v1/services",
		"/apis/gateway.networking.k8s.io/v1/grpcroutes", "/apis/gateway.networking.k8s.io/v1/httproutes",
		"/apis/gateway.networking.k8s.io/v1/tcproutes", "/apis/gateway.networking.k8s.io/v1/tlsroutes",
		"/apis/policy.linkerd.io/v1alpha1/egressnetworks", "/apis/policy.linkerd.io/v1alpha1/httplocalratelimitpolicies",
		"/apis/policy.linkerd.io/v1alpha1/authorizationpolicies", "/apis/policy.linkerd.io/v1alpha1/meshtlsauthentications",
		"/apis/policy.linkerd.io/v1alpha1/networkauthentications", "/apis/policy.linkerd.io/v1beta1/serverauthorizations",
		"/apis/policy.linkerd.io/v1beta3/servers", "/apis/policy.linkerd.io/v1beta3/httproutes",
	}
	slices.Sort(want)
	eventually.True(t, "a watch of every kind the policy controller reads", func() bool {
		got := counter.counts()
		for _, p := range want {
			if got[p] == 0 {
				return false
			}
		}
		return true
	})
	got := counter.counts()
	total := 0
	for p, n := range got {
		total += n
		if n != 1 {
			t.Errorf("%d watches of %s open, want one", n, p)
		}
		if !slices.Contains(want, p) {
			t.Errorf("unexpected watch of %s", p)
		}
	}
	t.Logf("%d watches open over %d kinds: %v", total, len(got), got)
}
