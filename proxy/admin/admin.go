// Package admin serves the proxy's admin port: /metrics (Prometheus text), /live, /ready,
// /proxy-log-level (GET, and PUT from localhost), /shutdown (POST from localhost, when
// enabled), /identity/certificate, /env.json (the LINKERD2_PROXY_* configuration, from
// localhost), /logs.json (the log as a JSON stream, from localhost), plus /debug/pprof/ (from
// localhost) when enabled.
package admin

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/logstream"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// Options configures the admin handler.
type Options struct {
	// Metrics is exposed on /metrics.
	Metrics *metrics.Registry
	// Level is the proxy's log level, changed by PUT /proxy-log-level.
	Level *slog.LevelVar
	// LogFilter is the initial filter text reported by GET /proxy-log-level.
	LogFilter string
	// Shutdown, when non-nil, enables POST /shutdown, which calls it once.
	Shutdown func()
	// Pprof mounts the Go profiler under /debug/pprof/.
	Pprof bool
	// Certificate, when non-nil, returns the proxy's current mTLS certificate chain (leaf
	// first, DER; nil before the first), served as PEM on GET /identity/certificate. The
	// private key is never served.
	Certificate func() [][]byte
	// Env, when non-nil, returns the proxy's configuration environment (config.Environ),
	// served as a JSON object on GET /env.json to loopback clients.
	Env func() map[string]string
	// Logs, when non-nil, streams the proxy's log as JSON lines on GET /logs.json to
	// loopback clients, from the request until they disconnect.
	Logs *logstream.Hub
	Log  *slog.Logger
}

// Admin is the admin HTTP handler with its readiness state.
type Admin struct {
	opts  Options
	ready atomic.Bool
	mux   *http.ServeMux

	mu     sync.Mutex
	filter string
	once   sync.Once
}

// New returns the admin handler, not ready until SetReady(true).
func New(opts Options) *Admin {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	a := &Admin{opts: opts, mux: http.NewServeMux(), filter: opts.LogFilter}
	a.mux.HandleFunc("GET /metrics", a.serveMetrics)
	a.mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "live\n") })
	a.mux.HandleFunc("GET /ready", a.serveReady)
	a.mux.HandleFunc("GET /proxy-log-level", a.getLevel)
	a.mux.HandleFunc("PUT /proxy-log-level", a.putLevel)
	a.mux.HandleFunc("POST /shutdown", a.shutdown)
	a.mux.HandleFunc("GET /identity/certificate", a.serveCertificate)
	if opts.Env != nil {
		a.mux.HandleFunc("GET /env.json", loopbackOnly(a.serveEnv))
	}
	if opts.Logs != nil {
		a.mux.HandleFunc("GET /logs.json", loopbackOnly(a.serveLogs))
	}
	if opts.Pprof {
		// Profiles reveal memory contents and cost CPU: local clients only.
		a.mux.HandleFunc("/debug/pprof/", loopbackOnly(pprof.Index))
		a.mux.HandleFunc("/debug/pprof/profile", loopbackOnly(pprof.Profile))
		a.mux.HandleFunc("/debug/pprof/symbol", loopbackOnly(pprof.Symbol))
		a.mux.HandleFunc("/debug/pprof/trace", loopbackOnly(pprof.Trace))
	}
	return a
}

// serveCertificate writes the certificate chain as PEM, or 404 when there is none.
func (a *Admin) serveCertificate(w http.ResponseWriter, _ *http.Request) {
	var chain [][]byte
	if a.opts.Certificate != nil {
		chain = a.opts.Certificate()
	}
	if len(chain) == 0 {
		http.Error(w, "no identity certificate", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	for _, der := range chain {
		pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
}

// SetReady sets what /ready reports.
func (a *Admin) SetReady(ready bool) { a.ready.Store(ready) }

// ServeHTTP implements http.Handler.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *Admin) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	if _, err := a.opts.Metrics.WriteTo(w); err != nil {
		a.opts.Log.Debug("writing metrics", "error", err)
	}
}

func (a *Admin) serveReady(w http.ResponseWriter, _ *http.Request) {
	if !a.ready.Load() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

func (a *Admin) getLevel(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	f := a.filter
	a.mu.Unlock()
	io.WriteString(w, f+"\n")
}

func (a *Admin) putLevel(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		http.Error(w, "the log level can only be changed from localhost", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	level, err := config.ParseLogLevel(string(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.filter = string(body)
	a.mu.Unlock()
	if a.opts.Level != nil {
		a.opts.Level.Set(level)
	}
	a.opts.Log.Info("log level changed", "filter", string(body))
	w.WriteHeader(http.StatusNoContent)
}

func (a *Admin) shutdown(w http.ResponseWriter, r *http.Request) {
	if a.opts.Shutdown == nil {
		http.Error(w, fmt.Sprintf("shutdown endpoint is disabled (set %s=true)", config.EnvShutdownEndpointEnabled), http.StatusNotFound)
		return
	}
	if !fromLoopback(r) {
		http.Error(w, "shutdown is only allowed from localhost", http.StatusForbidden)
		return
	}
	io.WriteString(w, "shutdown\n")
	a.once.Do(func() {
		a.opts.Log.Info("shutdown requested through the admin endpoint")
		go a.opts.Shutdown()
	})
}

// loopbackOnly serves h to clients on loopback and answers 403 to others.
// serveEnv writes the configuration environment as a JSON object, keys sorted.
func (a *Admin) serveEnv(w http.ResponseWriter, _ *http.Request) {
	b, err := json.MarshalIndent(a.opts.Env(), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// serveLogs streams log lines (newline-delimited JSON) until the client goes away.
func (a *Admin) serveLogs(w http.ResponseWriter, r *http.Request) {
	lines, done := a.opts.Logs.Subscribe(256)
	defer done()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case line := <-lines:
			if _, err := w.Write(line); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

func loopbackOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			http.Error(w, "only allowed from localhost", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

// fromLoopback reports whether r comes from a loopback address. The proxy never delivers
// inbound traffic to its own ports (see accept.Server.OwnPort), so a loopback client is
// in the pod.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
