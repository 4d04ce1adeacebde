// Package demotest runs the demo application on loopback for tests: the Catalog and
// Ratings gRPC services on real listeners and the front end on a real HTTP server,
// talking to each other with real gRPC.
package demotest

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/l5d-go/l5d/test/demo/catalog"
	demov1 "github.com/l5d-go/l5d/test/demo/gen/demov1"
	"github.com/l5d-go/l5d/test/demo/ratings"
	"github.com/l5d-go/l5d/test/demo/serve"
	"github.com/l5d-go/l5d/test/demo/web"
)

// Stack is the running demo application.
type Stack struct {
	// CatalogAddr and RatingsAddr are the gRPC services' loopback addresses.
	CatalogAddr, RatingsAddr string
	// Catalog and Ratings are clients of the services.
	Catalog demov1.CatalogClient
	Ratings demov1.RatingsClient
	// Web is the front end's handler, served at WebURL.
	Web    http.Handler
	WebURL string
}

// ServeGRPC serves srv on a loopback port until the test ends and returns its address.
func ServeGRPC(t testing.TB, srv *grpc.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.GRPC(ctx, ln, srv) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gRPC server: %v", err)
		}
	})
	return ln.Addr().String()
}

// Dial returns a plaintext gRPC client connection to addr, closed when the test ends.
func Dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Start runs the catalog, ratings with opts, and the front end, until the test ends.
func Start(t testing.TB, opts ratings.Options) *Stack {
	t.Helper()
	rs, err := ratings.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	csrv := serve.NewGRPCServer()
	demov1.RegisterCatalogServer(csrv, catalog.Server{})
	rsrv := serve.NewGRPCServer()
	demov1.RegisterRatingsServer(rsrv, rs)
	s := &Stack{CatalogAddr: ServeGRPC(t, csrv), RatingsAddr: ServeGRPC(t, rsrv)}
	s.Catalog = demov1.NewCatalogClient(Dial(t, s.CatalogAddr))
	s.Ratings = demov1.NewRatingsClient(Dial(t, s.RatingsAddr))
	s.Web = web.New(s.Catalog, s.Ratings, slog.New(slog.DiscardHandler))
	hs := httptest.NewServer(s.Web)
	t.Cleanup(hs.Close)
	s.WebURL = hs.URL
	return s
}
