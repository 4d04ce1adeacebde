package gatewayprobe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestProberFollowsTheGateway probes a real HTTP server that answers /ready with 200 or
// 503: alive after one success, down only after FailureThreshold failures in a row,
// alive again after the next success, with the metrics in step.
func TestProberFollowsTheGateway(t *testing.T) {
	var healthy atomic.Bool
	var failures atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		if !healthy.Load() {
			failures.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	var mu sync.Mutex
	var changes []bool
	reg := prometheus.NewRegistry()
	p := &Prober{Cluster: "east", URL: srv.URL + "/ready", Period: 5 * time.Millisecond, Timeout: 5 * time.Second,
		FailureThreshold: 3, Metrics: NewMetrics(reg), OnChange: func(a bool) {
			mu.Lock()
			changes = append(changes, a)
			mu.Unlock()
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitChanges := func(want ...bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			mu.Lock()
			got := append([]bool(nil), changes...)
			mu.Unlock()
			if len(got) >= len(want) {
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("changes %v, want %v", got, want)
					}
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("changes %v, want %v", got, want)
			}
			time.Sleep(5 * time.Millisecond) // polling interval
		}
	}

	healthy.Store(true)
	waitChanges(true)
	if !p.Alive() || testutil.ToFloat64(p.Metrics.Alive.WithLabelValues("east")) != 1 {
		t.Fatal("not alive after a success")
	}
	healthy.Store(false)
	waitChanges(true, false)
	if n := failures.Load(); n < 3 {
		t.Errorf("down after %d failures, want >= 3", n)
	}
	if testutil.ToFloat64(p.Metrics.Alive.WithLabelValues("east")) != 0 {
		t.Error("gateway_alive not 0 when down")
	}
	healthy.Store(true)
	waitChanges(true, false, true)
	if n := testutil.CollectAndCount(p.Metrics.Latency); n != 1 {
		t.Errorf("latency series = %d", n)
	}
}

// TestProberUnreachable: a closed port counts as failures, never as alive.
func TestProberUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/ready"
	srv.Close()
	reg := prometheus.NewRegistry()
	p := &Prober{Cluster: "east", URL: url, Period: 5 * time.Millisecond, Timeout: 5 * time.Second, FailureThreshold: 1, Metrics: NewMetrics(reg)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	deadline := time.Now().Add(time.Minute)
	for testutil.ToFloat64(p.Metrics.Probes.WithLabelValues("east", "failure")) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no failed probes counted")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	cancel()
	<-done
	if p.Alive() {
		t.Error("alive without a successful probe")
	}
}
