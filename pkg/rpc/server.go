package rpc

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// Keepalive settings shared by servers and clients built here.
const (
	// MinClientPingInterval is the shortest interval at which a client may send keepalive
	// pings; a client pinging more often is disconnected with GOAWAY "too_many_pings".
	MinClientPingInterval = 10 * time.Second
	// ServerPingInterval is how long a server waits on an idle connection before pinging
	// the client to check it is alive.
	ServerPingInterval = 30 * time.Second
	// PingTimeout is how long either side waits for a ping's answer before closing the
	// connection.
	PingTimeout = 10 * time.Second
	// ClientPingInterval is how often clients built here ping an idle connection; it is
	// above MinClientPingInterval so a server built here never rejects them.
	ClientPingInterval = 30 * time.Second
	// DefaultShutdownTimeout is how long Serve lets in-flight calls finish before it
	// closes the remaining connections.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultMaxConcurrentStreams bounds the streams one client connection may have open
	// at once (advertised in SETTINGS_MAX_CONCURRENT_STREAMS; a stream beyond it is
	// refused with RST_STREAM REFUSED_STREAM). A proxy holds a Get and a GetProfile watch
	// per destination it talks to, plus policy watches, on one connection, so the bound
	// leaves room for a busy ingress while stopping one connection from opening streams
	// (and handler goroutines) without limit, which grpc-go otherwise allows.
	DefaultMaxConcurrentStreams = 1000
	// DefaultMaxRecvMsgSize bounds one request message. The control-plane APIs take small
	// requests (a CSR and a token at most), so this is far above need and far below
	// grpc-go's 4 MiB default times the stream limit.
	DefaultMaxRecvMsgSize = 1 << 20
)

// ServerOptions configures NewServer. The zero value is usable: it logs to slog.Default,
// registers metrics with prometheus.DefaultRegisterer and serves plaintext.
type ServerOptions struct {
	// Logger receives one line per finished call (debug for successes) and every
	// recovered panic.
	Logger *slog.Logger
	// Registerer receives the grpc_server_* metrics and grpc_server_panics_recovered_total.
	Registerer prometheus.Registerer
	// TLS, when set, makes the server speak TLS with this configuration.
	TLS *tls.Config
	// ShutdownTimeout bounds graceful shutdown in Serve; DefaultShutdownTimeout when zero.
	ShutdownTimeout time.Duration
	// MaxConcurrentStreams bounds the streams open at once on one client connection;
	// DefaultMaxConcurrentStreams when zero.
	MaxConcurrentStreams uint32
	// MaxRecvMsgSize bounds the size of one received message in bytes (larger ones fail
	// with ResourceExhausted); DefaultMaxRecvMsgSize when zero.
	MaxRecvMsgSize int
	// Extra options are appended after the ones built here.
	Extra []grpc.ServerOption
}

// Server is a gRPC server with the standard health service registered. Register the
// component's services on GRPC, then call Serve or ServeListener.
type Server struct {
	// GRPC is the underlying server, for registering services.
	GRPC *grpc.Server
	// Health is the grpc.health.v1 service. The overall service "" starts SERVING; a
	// component that is not ready yet calls SetServing("", false) before serving.
	Health *health.Server

	log             *slog.Logger
	metrics         *grpcprom.ServerMetrics
	shutdownTimeout time.Duration
	stopping        chan struct{}
}

// NewServer builds a Server with recovery, logging and Prometheus interceptors, keepalive
// enforcement (clients may ping every MinClientPingInterval, even without active streams),
// server keepalive pings, a bound on concurrent streams per connection and on request
// message size, and the health service. It fails only when the metrics cannot be
// registered.
func NewServer(opts ServerOptions) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	metrics, err := register(reg, grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram()))
	if err != nil {
		return nil, fmt.Errorf("registering gRPC server metrics: %w", err)
	}
	panics, err := register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "grpc_server_panics_recovered_total",
		Help: "Number of gRPC handler panics recovered and answered with codes.Internal.",
	}))
	if err != nil {
		return nil, fmt.Errorf("registering gRPC panic counter: %w", err)
	}
	logger := slogAdapter(log)
	logOpts := loggingOptions(serverCodeLevel)
	recoverOpt := recovery.WithRecoveryHandlerContext(recoveryHandler(log, panics))

	serverOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(
			metrics.UnaryServerInterceptor(),
			logging.UnaryServerInterceptor(logger, logOpts...),
			recovery.UnaryServerInterceptor(recoverOpt),
		),
		grpc.ChainStreamInterceptor(
			metrics.StreamServerInterceptor(),
			logging.StreamServerInterceptor(logger, logOpts...),
			recovery.StreamServerInterceptor(recoverOpt),
		),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             MinClientPingInterval,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    ServerPingInterval,
			Timeout: PingTimeout,
		}),
		grpc.MaxConcurrentStreams(cmp.Or(opts.MaxConcurrentStreams, DefaultMaxConcurrentStreams)),
		grpc.MaxRecvMsgSize(cmp.Or(opts.MaxRecvMsgSize, DefaultMaxRecvMsgSize)),
	}
	if opts.TLS != nil {
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	serverOpts = append(serverOpts, opts.Extra...)

	s := &Server{
		GRPC:            grpc.NewServer(serverOpts...),
		Health:          health.NewServer(),
		log:             log,
		metrics:         metrics,
		shutdownTimeout: opts.ShutdownTimeout,
		stopping:        make(chan struct{}),
	}
	if s.shutdownTimeout <= 0 {
		s.shutdownTimeout = DefaultShutdownTimeout
	}
	healthgrpc.RegisterHealthServer(s.GRPC, s.Health)
	return s, nil
}

// SetServing sets the health status reported for service ("" is the whole server):
// SERVING when serving is true, NOT_SERVING otherwise. Watchers are told at once.
func (s *Server) SetServing(service string, serving bool) {
	st := healthgrpc.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthgrpc.HealthCheckResponse_SERVING
	}
	s.Health.SetServingStatus(service, st)
}

// Stopping returns a channel closed when graceful shutdown begins. Long-lived stream
// handlers (watches) should return when it closes: graceful shutdown waits for every open
// stream, so a stream that never ends holds shutdown for the whole timeout.
func (s *Server) Stopping() <-chan struct{} { return s.stopping }

// Serve listens on addr (for example ":8080") and serves until ctx is cancelled or the
// process receives SIGTERM or SIGINT, then shuts down gracefully (see ServeListener).
func (s *Server) Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("gRPC server listening on %s: %w", addr, err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves on ln until ctx is cancelled or the process receives SIGTERM or
// SIGINT. It then marks every health status NOT_SERVING, lets in-flight calls finish for
// up to the shutdown timeout, and closes whatever is left. It returns nil after such a
// stop and the server's error if serving fails. A Server serves once.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()

	s.metrics.InitializeMetrics(s.GRPC)
	served := make(chan error, 1)
	go func() { served <- s.GRPC.Serve(ln) }()
	s.log.Info("gRPC server listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		s.GRPC.Stop()
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("gRPC server on %s: %w", ln.Addr(), err)
		}
		return nil
	case <-ctx.Done():
	}

	s.log.Info("gRPC server shutting down", "addr", ln.Addr().String(), "reason", context.Cause(ctx))
	s.Health.Shutdown()
	close(s.stopping)
	graceful := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(graceful)
	}()
	timer := time.NewTimer(s.shutdownTimeout)
	defer timer.Stop()
	select {
	case <-graceful:
	case <-timer.C:
		s.log.Warn("gRPC graceful shutdown timed out; closing remaining connections",
			"timeout", s.shutdownTimeout.String())
		s.GRPC.Stop()
		<-graceful
	}
	<-served
	return nil
}
