// Command demo-catalog serves the demo's Catalog gRPC service (and grpc.health.v1) on
// -addr, and a readiness endpoint on -admin-addr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/l5d-go/l5d/test/demo/catalog"
	demov1 "github.com/l5d-go/l5d/test/demo/gen/demov1"
	"github.com/l5d-go/l5d/test/demo/serve"
)

func main() {
	addr := flag.String("addr", serve.Env("ADDR", ":8080"), "gRPC listen address (env ADDR)")
	adminAddr := flag.String("admin-addr", serve.Env("ADMIN_ADDR", ":9990"), "readiness endpoint listen address (env ADMIN_ADDR)")
	flag.Parse()
	if err := run(*addr, *adminAddr); err != nil {
		fmt.Fprintln(os.Stderr, "demo-catalog:", err)
		os.Exit(1)
	}
}

func run(addr, adminAddr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := serve.Listen("gRPC", addr)
	if err != nil {
		return err
	}
	adminLn, err := serve.Listen("admin", adminAddr)
	if err != nil {
		ln.Close()
		return err
	}
	srv := serve.NewGRPCServer()
	demov1.RegisterCatalogServer(srv, catalog.Server{})
	serve.Logger("demo-catalog").Info("serving", "addr", ln.Addr().String(), "admin", adminLn.Addr().String())
	return serve.Run(ctx,
		func(ctx context.Context) error { return serve.GRPC(ctx, ln, srv) },
		func(ctx context.Context) error { return serve.HTTP(ctx, adminLn, serve.ReadyHandler()) })
}
