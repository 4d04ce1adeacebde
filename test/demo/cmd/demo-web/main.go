// Command demo-web serves the demo's HTTP/1.1 front end on -addr (see package web for the
// routes), calling the Catalog service at -catalog-addr and Ratings at -ratings-addr, with
// the trace context of each request (package tracectx).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	demov1 "github.com/l5d-go/l5d/test/demo/gen/demov1"
	"github.com/l5d-go/l5d/test/demo/serve"
	"github.com/l5d-go/l5d/test/demo/tracectx"
	"github.com/l5d-go/l5d/test/demo/web"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-web:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", serve.Env("ADDR", ":8080"), "HTTP listen address (env ADDR)")
	catalogAddr := flag.String("catalog-addr", serve.Env("CATALOG_ADDR", "catalog.l5d-demo.svc.cluster.local:8080"),
		"host:port of the Catalog gRPC service (env CATALOG_ADDR)")
	ratingsAddr := flag.String("ratings-addr", serve.Env("RATINGS_ADDR", "ratings.l5d-demo.svc.cluster.local:8080"),
		"host:port of the Ratings gRPC service (env RATINGS_ADDR)")
	flag.Parse()
	log := serve.Logger("demo-web")

	// Trace context (traceparent, B3) goes on from each request to its backend calls, so the
	// proxies' spans of a request's hops join one trace.
	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(tracectx.UnaryClientInterceptor())}
	catalogConn, err := grpc.NewClient(*catalogAddr, dial...)
	if err != nil {
		return fmt.Errorf("catalog address %q: %w", *catalogAddr, err)
	}
	defer catalogConn.Close()
	ratingsConn, err := grpc.NewClient(*ratingsAddr, dial...)
	if err != nil {
		return fmt.Errorf("ratings address %q: %w", *ratingsAddr, err)
	}
	defer ratingsConn.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := serve.Listen("HTTP", *addr)
	if err != nil {
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "catalog", *catalogAddr, "ratings", *ratingsAddr)
	h := web.New(demov1.NewCatalogClient(catalogConn), demov1.NewRatingsClient(ratingsConn), log)
	return serve.HTTP(ctx, ln, tracectx.Middleware(h))
}
