package certify_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/l5d-go/l5d/identity/certify"
	pb "github.com/l5d-go/l5d/proto/gen/identity"
	"github.com/l5d-go/l5d/test/kube"
)

// BenchmarkCertify measures Certify end to end over gRPC on loopback with a real
// TokenReview per call (CSR generation excluded), reporting certificates per second and
// the p99 latency. BenchmarkSignOnly is the baseline: the same calls through the
// validation and signing path with the TokenReview answered locally.
func BenchmarkCertify(b *testing.B) { benchCertify(b, false) }

// BenchmarkSignOnly is the baseline for BenchmarkCertify; see there.
func BenchmarkSignOnly(b *testing.B) { benchCertify(b, true) }

func benchCertify(b *testing.B, local bool) {
	e := startEnv(b, envOptions{localReview: local})
	ns := e.c.Namespace(b)
	e.c.CreateServiceAccount(b, ns, "web")
	reviewedUser.Store("system:serviceaccount:" + ns + ":web")
	id := e.svc.Identity(ns, "web")
	token := e.c.Token(b, ns, "web", kube.TokenOptions{Audiences: []string{certify.TokenAudience}})
	req := &pb.CertifyRequest{Identity: id, Token: []byte(token), CertificateSigningRequest: csr(b, p256(b), id)}
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if _, err := e.client.Certify(b.Context(), req); err != nil {
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
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "certs/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
