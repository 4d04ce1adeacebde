// Package admin is the admin HTTP server every l5d binary runs on its admin port:
//
//   - /metrics: Prometheus exposition of a registry (the default gatherer unless given);
//   - /live: 200 while the process runs;
//   - /ready: 200 when every registered readiness check passes, 503 listing the failing
//     checks otherwise;
//   - /debug/pprof/: Go profiling, only when enabled.
//
// Components add checks by name (AddCheck) or as settable flags (NewReadyFlag) and may
// mount further endpoints with Handle.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultShutdownTimeout is how long Serve lets in-flight requests finish on shutdown.
const DefaultShutdownTimeout = 5 * time.Second

// Options configures New. The zero value serves the default Prometheus gatherer without
// pprof and logs to slog.Default.
type Options struct {
	// Gatherer is exposed on /metrics; prometheus.DefaultGatherer when nil.
	Gatherer prometheus.Gatherer
	// EnablePprof mounts the Go profiler under /debug/pprof/.
	EnablePprof bool
	// Logger receives serving and shutdown messages and metric gathering errors.
	Logger *slog.Logger
	// ShutdownTimeout bounds graceful shutdown; DefaultShutdownTimeout when zero.
	ShutdownTimeout time.Duration
}

// Server is the admin HTTP server. Its methods are safe for concurrent use.
type Server struct {
	mux             *http.ServeMux
	log             *slog.Logger
	shutdownTimeout time.Duration

	mu     sync.RWMutex
	checks map[string]func() error
}

// New returns a Server with /metrics, /live, /ready and, if enabled, /debug/pprof/.
func New(opts Options) *Server {
	s := &Server{
		mux:             http.NewServeMux(),
		log:             opts.Logger,
		shutdownTimeout: opts.ShutdownTimeout,
		checks:          map[string]func() error{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.shutdownTimeout <= 0 {
		s.shutdownTimeout = DefaultShutdownTimeout
	}
	g := opts.Gatherer
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	s.mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "live")
	})
	s.mux.HandleFunc("GET /ready", s.serveReady)
	if opts.EnablePprof {
		s.mux.HandleFunc("/debug/pprof/", pprof.Index)
		s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return s
}

// AddCheck registers a readiness check under name, replacing any check of that name.
// /ready calls every check on each request, so checks must be quick and must not block;
// a non-nil error means not ready, and its text is shown on /ready.
func (s *Server) AddCheck(name string, check func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = check
}

// ReadyFlag is a readiness check whose state is set by the component, such as "caches
// synced". It starts not ready.
type ReadyFlag struct {
	name  string
	ready atomic.Bool
}

// NewReadyFlag registers a ReadyFlag check under name and returns it, not ready.
func (s *Server) NewReadyFlag(name string) *ReadyFlag {
	f := &ReadyFlag{name: name}
	s.AddCheck(name, f.check)
	return f
}

// Set marks the flag ready or not ready.
func (f *ReadyFlag) Set(ready bool) { f.ready.Store(ready) }

func (f *ReadyFlag) check() error {
	if !f.ready.Load() {
		return errors.New("not ready yet")
	}
	return nil
}

// Ready runs every readiness check and returns nil when all pass, or an error listing each
// failing check by name with its error, in name order.
func (s *Server) Ready() error {
	s.mu.RLock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make([]func() error, 0, len(names))
	slices.Sort(names)
	for _, n := range names {
		checks = append(checks, s.checks[n])
	}
	s.mu.RUnlock()

	var failed []string
	for i, check := range checks {
		if err := check(); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", names[i], err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("not ready: %s", strings.Join(failed, "; "))
	}
	return nil
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Handle mounts h on pattern (net/http.ServeMux syntax), for component-specific admin
// endpoints. It panics, as ServeMux does, if pattern conflicts with an existing one.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Serve listens on addr (for example ":9990") and serves until ctx is cancelled, then
// shuts down gracefully (see ServeListener).
func (s *Server) Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin server listening on %s: %w", addr, err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves on ln until ctx is cancelled. It then stops accepting, lets
// in-flight requests finish for up to the shutdown timeout, closes what remains and returns
// nil. It returns an error only if serving fails.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("admin server listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("admin server on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		s.log.Warn("admin server graceful shutdown timed out; closing connections", "error", err)
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server on %s: %w", ln.Addr(), err)
	}
	return nil
}
