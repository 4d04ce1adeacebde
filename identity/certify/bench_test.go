package certify_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/l5d-go/l5d/identity/certify"
	pb "github.com/l5d-go/l5d/proto/gen/identity"
	"github.com/l5d-go/l5d/test/bench/cpucost"
	"github.com/l5d-go/l5d/test/kube"
)

// The Certify benchmarks play the proxies of benchAccounts Deployments (one
// ServiceAccount each) of benchPodsPerAccount pods, every pod with its own key, CSR and
// pod-bound projected token for TokenAudience, as the kubelet mints them. benchParallelism
// callers per CPU call Certify at once, each as one pod after another, over one gRPC
// connection per Deployment.
const (
	benchAccounts       = 4
	benchPodsPerAccount = 8
	benchParallelism    = 8
)

// BenchmarkCertify measures Certify end to end: gRPC on loopback to the service, which
// checks the token with a real TokenReview against the test API server, then signs.
// It reports certificates per second, the p50 and p99 latency, and the CPU time per
// certificate of this process (service and callers; cpu-µs/op) and of the API server
// (apiserver-cpu-µs/op), which a loaded machine changes less than the rest. CSR and token
// generation are excluded (they are the proxies' and the kubelet's work). The review
// client authenticates as the identity command does in a cluster (reviewClient), and has
// no client-side rate limit, so that the figure is the service's and the API server's
// cost; the identity command's default -kube-apiclient-qps (100, as Linkerd) caps
// sustained reviews below that. The 32 pods' tokens come round every few milliseconds,
// and kube-apiserver keeps successful token authentications, TokenReviews' included, for
// 10 seconds: a review here costs it the request, not the signature check and the lookup
// of the pod the token is bound to.
//
// BenchmarkSignOnly is the baseline: the same calls with the TokenReview answered in
// process, so the ratio is what the real review costs.
func BenchmarkCertify(b *testing.B) { benchCertify(b, false) }

// BenchmarkSignOnly is the baseline for BenchmarkCertify; see there.
func BenchmarkSignOnly(b *testing.B) { benchCertify(b, true) }

func benchCertify(b *testing.B, local bool) {
	c := kube.Shared(b)
	rc := reviewClient(b, c)
	e := startEnv(b, envOptions{localReview: local, reviewClient: rc})
	ns := c.Namespace(b)
	var pods []*pb.CertifyRequest
	var conns []pb.IdentityClient
	for a := range benchAccounts {
		sa := fmt.Sprintf("web-%d", a)
		c.CreateServiceAccount(b, ns, sa)
		id := e.svc.Identity(ns, sa)
		for p := range benchPodsPerAccount {
			pod := c.CreatePod(b, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", sa, p), Namespace: ns},
				Spec: corev1.PodSpec{ServiceAccountName: sa}})
			token := c.Token(b, ns, sa, kube.TokenOptions{Audiences: []string{certify.TokenAudience}, Pod: pod.Name, Expiry: 24 * time.Hour})
			pods = append(pods, &pb.CertifyRequest{Identity: id, Token: []byte(token), CertificateSigningRequest: csr(b, p256(b), id)})
		}
		conns = append(conns, e.clientFrom(b, ""))
	}
	var mu sync.Mutex
	var lat []time.Duration
	var next atomic.Uint64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	cpu, err := cpucost.Start(b.Context(), c.Client().Discovery().RESTClient())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			i := int(next.Add(1)) % len(pods)
			t0 := time.Now()
			if _, err := conns[i/benchPodsPerAccount].Certify(b.Context(), pods[i]); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	cpu.Report(b, len(lat))
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "certs/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// reviewClient returns the client the identity service reviews tokens with, as in a
// cluster: authenticated by a token of its own ServiceAccount (linkerd-identity), allowed
// to create TokenReviews (system:auth-delegator), without a client-side rate limit.
func reviewClient(b *testing.B, c *kube.Cluster) kubernetes.Interface {
	ns := c.Namespace(b)
	c.CreateServiceAccount(b, ns, "linkerd-identity")
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ns + "-identity"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "linkerd-identity"}}}
	if _, err := c.Client().RbacV1().ClusterRoleBindings().Create(b.Context(), crb, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Client().RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
	})
	cfg := &rest.Config{Host: c.Host(), TLSClientConfig: rest.TLSClientConfig{CAData: c.CA()},
		BearerToken: c.Token(b, ns, "linkerd-identity", kube.TokenOptions{Expiry: time.Hour}), QPS: -1}
	rc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return rc
}
