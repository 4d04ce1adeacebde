// Package serve holds what the demo's commands share: flag defaults from the
// environment, logging, and serving gRPC and HTTP until a context ends.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// shutdownGrace bounds the graceful part of a shutdown.
const shutdownGrace = 10 * time.Second

// Env returns the environment variable name, or def when it is unset or empty.
func Env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// EnvFloat is Env for a number; an unparsable value is reported as an error naming the
// variable.
func EnvFloat(name string, def float64) (float64, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a number", name, v)
	}
	return f, nil
}

// Logger returns a JSON logger on stderr named after the component.
func Logger(component string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", component)
}

// NewGRPCServer returns a gRPC server with the standard grpc.health.v1 service reporting
// SERVING for the whole server.
func NewGRPCServer() *grpc.Server {
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	return srv
}

// GRPC serves srv on ln until ctx ends, then stops gracefully (forcibly after a grace
// period). It returns nil after a shutdown caused by ctx.
func GRPC(ctx context.Context, ln net.Listener, srv *grpc.Server) error {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			t := time.AfterFunc(shutdownGrace, srv.Stop)
			srv.GracefulStop()
			t.Stop()
		case <-done:
		}
	}()
	err := srv.Serve(ln)
	close(done)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("serving gRPC on %s: %w", ln.Addr(), err)
	}
	return nil
}

// HTTP serves h on ln until ctx ends, then shuts down gracefully. It returns nil after a
// shutdown caused by ctx.
func HTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	return HTTPServer(ctx, ln, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second})
}

// HTTPServer is HTTP for a server configured by the caller (its protocols, say).
func HTTPServer(ctx context.Context, ln net.Listener, srv *http.Server) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP on %s: %w", ln.Addr(), err)
	}
	return nil
}

// ReadyHandler answers 200 "ready" on every path: the readiness endpoint of a component
// that is ready as soon as it serves.
func ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
}

// Run runs every task until ctx ends or one of them fails; the first failure cancels the
// others. It returns the first error, after every task has returned.
func Run(ctx context.Context, tasks ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(tasks))
	for _, t := range tasks {
		go func() {
			err := t(ctx)
			if err != nil {
				cancel()
			}
			errc <- err
		}()
	}
	var first error
	for range tasks {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Listen binds addr for TCP, with an error naming what the address is for.
func Listen(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("binding the %s address %s: %w", what, addr, err)
	}
	return ln, nil
}
