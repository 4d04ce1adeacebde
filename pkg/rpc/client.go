package rpc

import (
	"crypto/tls"
	"fmt"
	"log/slog"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// ClientOptions configures NewClient. The zero value dials in plaintext, logs to
// slog.Default and registers metrics with prometheus.DefaultRegisterer.
type ClientOptions struct {
	// Logger receives one line per finished call (debug for successes, warn for failures).
	Logger *slog.Logger
	// Registerer receives the grpc_client_* metrics.
	Registerer prometheus.Registerer
	// TLS, when set, makes the client speak TLS with this configuration (set ServerName
	// to the identity the server must present); plaintext otherwise.
	TLS *tls.Config
	// Extra options are appended after the ones built here.
	Extra []grpc.DialOption
}

// NewClient returns a client connection to target (any grpc.NewClient target, such as
// "dns:///linkerd-identity-headless.linkerd.svc.cluster.local.:8080" or "127.0.0.1:8080")
// with Prometheus and logging interceptors and keepalive pings every ClientPingInterval
// even when idle. Connecting happens lazily on the first call.
func NewClient(target string, opts ClientOptions) (*grpc.ClientConn, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	metrics, err := register(reg, grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram()))
	if err != nil {
		return nil, fmt.Errorf("registering gRPC client metrics: %w", err)
	}
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = credentials.NewTLS(opts.TLS)
	}
	logger := slogAdapter(log)
	logOpts := loggingOptions(clientCodeLevel)
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(
			metrics.UnaryClientInterceptor(),
			logging.UnaryClientInterceptor(logger, logOpts...),
		),
		grpc.WithChainStreamInterceptor(
			metrics.StreamClientInterceptor(),
			logging.StreamClientInterceptor(logger, logOpts...),
		),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                ClientPingInterval,
			Timeout:             PingTimeout,
			PermitWithoutStream: true,
		}),
	}
	dialOpts = append(dialOpts, opts.Extra...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %s: %w", target, err)
	}
	return conn, nil
}
