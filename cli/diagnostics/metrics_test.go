package diagnostics

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/admin"
	"github.com/prometheus/client_golang/prometheus"
)

// adminServer runs the real admin server on loopback with one known gauge.
func adminServer(t *testing.T) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "identity_cert_expiration_timestamp_seconds", Help: "leaf expiry"})
	g.Set(1.9e9)
	reg.MustRegister(g)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); admin.New(admin.Options{Gatherer: reg}).ServeListener(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

func TestMetrics(t *testing.T) {
	addr := adminServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := Metrics(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "identity_cert_expiration_timestamp_seconds 1.9e+09") {
		t.Errorf("metrics:\n%s", body)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if _, err := Metrics(ctx, closed); err == nil || !strings.Contains(err.Error(), "fetching http://"+closed) {
		t.Errorf("closed port: err = %v", err)
	}
}
