package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type running struct {
	srv    *Server
	base   string
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, opts Options) *running {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv := New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, base: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(r.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestLiveAndReady(t *testing.T) {
	r := start(t, Options{Gatherer: prometheus.NewRegistry()})
	if code, body := r.get(t, "/live"); code != 200 || body != "live\n" {
		t.Errorf("/live = %d %q, want 200 live", code, body)
	}
	if code, body := r.get(t, "/ready"); code != 200 || body != "ready\n" {
		t.Errorf("/ready with no checks = %d %q, want 200 ready", code, body)
	}

	caches := r.srv.NewReadyFlag("caches")
	var issuerErr atomic.Pointer[error]
	expired := errors.New("issuer certificate expired")
	issuerErr.Store(&expired)
	r.srv.AddCheck("issuer", func() error { return *issuerErr.Load() })

	steps := []struct {
		name     string
		change   func()
		wantCode int
		wantBody string
	}{
		{"both failing", func() {}, 503, "not ready: caches: not ready yet; issuer: issuer certificate expired\n"},
		{"caches synced", func() { caches.Set(true) }, 503, "not ready: issuer: issuer certificate expired\n"},
		{"issuer fixed", func() { issuerErr.Store(new(error)) }, 200, "ready\n"},
		{"caches lost", func() { caches.Set(false) }, 503, "not ready: caches: not ready yet\n"},
	}
	for _, st := range steps {
		st.change()
		if code, body := r.get(t, "/ready"); code != st.wantCode || body != st.wantBody {
			t.Errorf("%s: /ready = %d %q, want %d %q", st.name, code, body, st.wantCode, st.wantBody)
		}
	}
	// The process stays live whatever readiness says.
	if code, _ := r.get(t, "/live"); code != 200 {
		t.Errorf("/live = %d while not ready, want 200", code)
	}
	resp, err := http.Post(r.base+"/ready", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ready = %d, want 405", resp.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "identity_cert_refresh_count", Help: "Refreshes."})
	reg.MustRegister(c)
	c.Add(3)
	r := start(t, Options{Gatherer: reg})
	code, body := r.get(t, "/metrics")
	if code != 200 || !strings.Contains(body, "identity_cert_refresh_count 3\n") {
		t.Fatalf("/metrics = %d:\n%s", code, body)
	}
	if strings.Contains(body, "go_goroutines") {
		t.Error("/metrics shows the default registry's metrics, not the given one")
	}
	// Without a gatherer, the process-wide default registry is served.
	r = start(t, Options{})
	if _, body := r.get(t, "/metrics"); !strings.Contains(body, "go_goroutines") {
		t.Errorf("default /metrics lacks go_goroutines:\n%.300s", body)
	}
}

func TestPprofOnlyWhenEnabled(t *testing.T) {
	off := start(t, Options{Gatherer: prometheus.NewRegistry()})
	on := start(t, Options{Gatherer: prometheus.NewRegistry(), EnablePprof: true})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if code, _ := off.get(t, path); code != 404 {
			t.Errorf("pprof disabled: GET %s = %d, want 404", path, code)
		}
		if code, body := on.get(t, path); code != 200 || body == "" {
			t.Errorf("pprof enabled: GET %s = %d, want 200 with a body", path, code)
		}
	}
}

func TestExtraHandler(t *testing.T) {
	srv := New(Options{Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	srv.Handle("PUT /proxy-log-level", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, ln) }()
	defer func() { cancel(); <-done }()
	req, _ := http.NewRequest(http.MethodPut, "http://"+ln.Addr().String()+"/proxy-log-level", strings.NewReader("debug"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("PUT /proxy-log-level = %d, want 204", resp.StatusCode)
	}
}

func TestGracefulShutdown(t *testing.T) {
	r := start(t, Options{Gatherer: prometheus.NewRegistry(), ShutdownTimeout: time.Minute})
	entered, release := make(chan struct{}), make(chan struct{})
	r.srv.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	}))
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get(r.base + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		result <- string(b)
	}()
	<-entered
	r.cancel()
	// New connections are refused once shutdown has begun.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.Dial("tcp", strings.TrimPrefix(r.base, "http://"))
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("admin server still accepts connections after shutdown began")
		}
	}
	close(release)
	if got := <-result; got != "done" {
		t.Errorf("in-flight request during shutdown got %q, want done", got)
	}
	if err := <-r.done; err != nil {
		t.Errorf("ServeListener: %v", err)
	}
	r.done <- nil // for Cleanup
}

func TestServeReportsListenErrors(t *testing.T) {
	srv := New(Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.Serve(context.Background(), "256.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "256.0.0.1:1") {
		t.Errorf("Serve on a bad address: %v, want an error naming it", err)
	}
}
