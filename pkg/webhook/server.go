package webhook

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/l5d-go/l5d/pkg/servingcert"
)

// Server is an admission webhook's HTTPS server: the address it listens on and its
// serving certificate, reloaded from its files as they change (a rotated Secret takes
// effect without a restart). Every webhook of the mesh is served by one.
type Server struct {
	Addr string
	cert *servingcert.Reloader
}

// NewServer loads the certificate pair in certFile and keyFile for serving on addr; the
// error names the file that does not load.
func NewServer(addr, certFile, keyFile string) (*Server, error) {
	cert, err := servingcert.New(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	return &Server{Addr: addr, cert: cert}, nil
}

// Serve serves h until ctx ends (see ServeTLS).
func (s *Server) Serve(ctx context.Context, h http.Handler, log *slog.Logger) error {
	return ServeTLS(ctx, s.Addr, h, s.cert.GetCertificate, log)
}

// Err returns the error of the last reload of the certificate, nil when it succeeded (a
// health check).
func (s *Server) Err() error { return s.cert.Err() }

// Flags are the command-line flags of a component that serves one admission webhook
// (the extensions' injectors): -addr, -tls-cert and -tls-key.
type Flags struct{ addr, cert, key *string }

// RegisterFlags adds the webhook's flags to fs; service names the webhook's Service in
// their help.
func RegisterFlags(fs *flag.FlagSet, service string) *Flags {
	return &Flags{
		addr: fs.String("addr", ":8443", "address to serve the webhook on (HTTPS)"),
		cert: fs.String("tls-cert", "", "serving certificate (PEM) for "+service+".<namespace>.svc (required)"),
		key:  fs.String("tls-key", "", "serving certificate's key (PEM) (required)"),
	}
}

// Server returns the server the parsed flags describe: -tls-cert and -tls-key are
// required, and their files must load.
func (f *Flags) Server() (*Server, error) {
	if *f.cert == "" || *f.key == "" {
		return nil, errors.New("-tls-cert and -tls-key are required (the API server calls webhooks over HTTPS)")
	}
	return NewServer(*f.addr, *f.cert, *f.key)
}
