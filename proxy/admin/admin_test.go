package admin

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/logstream"
	"github.com/l5d-go/l5d/proxy/metrics"
)

func do(t *testing.T, h http.Handler, method, path, body, remote string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func TestAdminEndpoints(t *testing.T) {
	reg := metrics.New()
	reg.HTTP(metrics.Labels("direction", "inbound")).Request()
	level := new(slog.LevelVar)
	var shut atomic.Int32
	a := New(Options{Metrics: reg, Level: level, LogFilter: "warn,linkerd=info", Shutdown: func() { shut.Add(1) }, Log: slog.New(slog.DiscardHandler)})
	const local, remote = "127.0.0.1:5555", "10.1.2.3:5555"

	cases := []struct {
		name, method, path, body, from string
		code                           int
		contains                       string
	}{
		{"live", "GET", "/live", "", remote, 200, "live"},
		{"not ready yet", "GET", "/ready", "", remote, 503, "not ready"},
		{"metrics", "GET", "/metrics", "", remote, 200, `request_total{direction="inbound"} 1`},
		{"log level read", "GET", "/proxy-log-level", "", remote, 200, "warn,linkerd=info"},
		{"log level from remote refused", "PUT", "/proxy-log-level", "linkerd=debug", remote, 403, "localhost"},
		{"bad log level", "PUT", "/proxy-log-level", "linkerd=loud", local, 400, "unknown level"},
		{"log level set", "PUT", "/proxy-log-level", "linkerd=debug", local, 204, ""},
		{"shutdown from remote refused", "POST", "/shutdown", "", remote, 403, "localhost"},
	}
	for _, tc := range cases {
		code, body := do(t, a, tc.method, tc.path, tc.body, tc.from)
		if code != tc.code || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %q; want %d containing %q", tc.name, code, body, tc.code, tc.contains)
		}
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("level after PUT is %v; want debug", level.Level())
	}
	a.SetReady(true)
	if code, _ := do(t, a, "GET", "/ready", "", remote); code != 200 {
		t.Errorf("ready after SetReady: %d", code)
	}
	if code, _ := do(t, a, "POST", "/shutdown", "", local); code != 200 {
		t.Errorf("shutdown from localhost: %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for shut.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if shut.Load() != 1 {
		t.Error("shutdown callback not called")
	}
}

func TestShutdownDisabledByDefault(t *testing.T) {
	a := New(Options{Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler)})
	code, body := do(t, a, "POST", "/shutdown", "", "127.0.0.1:1")
	if code != 404 || !strings.Contains(body, "LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED") {
		t.Errorf("disabled shutdown: %d %q; want 404 naming the variable", code, body)
	}
}

func TestIdentityCertificateEndpoint(t *testing.T) {
	var chain [][]byte
	a := New(Options{Metrics: metrics.New(), Certificate: func() [][]byte { return chain }})
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/identity/certificate", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("before a certificate: %d", rec.Code)
	}
	chain = [][]byte{{0x30, 0x01}, {0x30, 0x02}}
	rec = httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/identity/certificate", nil))
	if rec.Code != 200 || strings.Count(rec.Body.String(), "BEGIN CERTIFICATE") != 2 || strings.Contains(rec.Body.String(), "PRIVATE") {
		t.Fatalf("certificate endpoint: %d %q", rec.Code, rec.Body.String())
	}
}

// TestPprofOnlyFromLoopback: the profiler, when mounted, answers local clients only.
func TestPprofOnlyFromLoopback(t *testing.T) {
	a := New(Options{Metrics: metrics.New(), Pprof: true, Log: slog.New(slog.DiscardHandler)})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/symbol", "/debug/pprof/goroutine?debug=1"} {
		if code, _ := do(t, a, "GET", path, "", "10.1.2.3:5555"); code != http.StatusForbidden {
			t.Errorf("%s from a remote client: %d, want 403", path, code)
		}
		if code, _ := do(t, a, "GET", path, "", "[::1]:5555"); code != http.StatusOK {
			t.Errorf("%s from loopback: %d, want 200", path, code)
		}
	}
}

// TestEnvJSON checks GET /env.json: the proxy's configuration variables that are set, as a
// JSON object, only to loopback clients; and no endpoint when Env is nil.
func TestEnvJSON(t *testing.T) {
	set := map[string]string{"LINKERD2_PROXY_LOG": "info", "LINKERD2_PROXY_CORES": "2", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
	a := New(Options{Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler),
		Env: func() map[string]string {
			return config.Environ(func(k string) (string, bool) { v, ok := set[k]; return v, ok })
		}})
	code, body := do(t, a, "GET", "/env.json", "", "127.0.0.1:5555")
	if code != http.StatusOK {
		t.Fatalf("/env.json: %d %s", code, body)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("/env.json is not a JSON object: %v\n%s", err, body)
	}
	if len(got) != 2 || got["LINKERD2_PROXY_LOG"] != "info" || got["LINKERD2_PROXY_CORES"] != "2" {
		t.Errorf("/env.json = %v, want the two proxy variables only", got)
	}
	if code, _ := do(t, a, "GET", "/env.json", "", "10.1.2.3:5555"); code != http.StatusForbidden {
		t.Errorf("/env.json from a remote client: %d, want 403", code)
	}
	b := New(Options{Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler)})
	if code, _ := do(t, b, "GET", "/env.json", "", "127.0.0.1:5555"); code != http.StatusNotFound {
		t.Errorf("/env.json without Env: %d, want 404", code)
	}
}

// TestLogsJSON streams GET /logs.json from a loopback client: a record logged once the
// stream is open arrives as a JSON line; a remote client is refused.
func TestLogsJSON(t *testing.T) {
	hub := logstream.New()
	log := slog.New(hub.Handler(slog.NewTextHandler(io.Discard, nil)))
	a := New(Options{Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler), Logs: hub})
	srv := httptest.NewServer(a)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/logs.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("/logs.json: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for hub.Subscribers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stream never subscribed")
		}
		time.Sleep(5 * time.Millisecond) // poll interval until the handler has subscribed
	}
	log.Warn("connection refused", "addr", "10.0.0.7:80")
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil || m["msg"] != "connection refused" || m["addr"] != "10.0.0.7:80" || m["level"] != "WARN" {
		t.Errorf("line %s (%v)", line, err)
	}
	if code, _ := do(t, a, "GET", "/logs.json", "", "10.1.2.3:5555"); code != http.StatusForbidden {
		t.Errorf("/logs.json from a remote client: %d, want 403", code)
	}
}
