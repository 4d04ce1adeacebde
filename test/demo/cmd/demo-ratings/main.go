// Command demo-ratings serves the demo's Ratings gRPC service (and grpc.health.v1) on
// -addr, and a readiness endpoint on -admin-addr. GetRating fails for -failure-share of
// the calls and takes -latency plus up to -jitter.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	demov1 "github.com/l5d-go/l5d/test/demo/gen/demov1"
	"github.com/l5d-go/l5d/test/demo/ratings"
	"github.com/l5d-go/l5d/test/demo/serve"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-ratings:", err)
		os.Exit(1)
	}
}

func run() error {
	share, err := serve.EnvFloat("FAILURE_SHARE", ratings.DefaultFailureShare)
	if err != nil {
		return err
	}
	latency, err := envDuration("LATENCY", 20*time.Millisecond)
	if err != nil {
		return err
	}
	jitter, err := envDuration("JITTER", 30*time.Millisecond)
	if err != nil {
		return err
	}
	addr := flag.String("addr", serve.Env("ADDR", ":8080"), "gRPC listen address (env ADDR)")
	adminAddr := flag.String("admin-addr", serve.Env("ADMIN_ADDR", ":9990"), "readiness endpoint listen address (env ADMIN_ADDR)")
	var opts ratings.Options
	flag.Float64Var(&opts.FailureShare, "failure-share", share, "share of GetRating calls failing with UNAVAILABLE or INTERNAL, 0 to 1 (env FAILURE_SHARE)")
	flag.DurationVar(&opts.Latency, "latency", latency, "least duration of a GetRating call (env LATENCY)")
	flag.DurationVar(&opts.Jitter, "jitter", jitter, "random extra duration of a GetRating call, up to this (env JITTER)")
	flag.Parse()

	svc, err := ratings.New(opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := serve.Listen("gRPC", *addr)
	if err != nil {
		return err
	}
	adminLn, err := serve.Listen("admin", *adminAddr)
	if err != nil {
		ln.Close()
		return err
	}
	srv := serve.NewGRPCServer()
	demov1.RegisterRatingsServer(srv, svc)
	serve.Logger("demo-ratings").Info("serving", "addr", ln.Addr().String(), "admin", adminLn.Addr().String(),
		"failure_share", opts.FailureShare, "latency", opts.Latency.String(), "jitter", opts.Jitter.String())
	return serve.Run(ctx,
		func(ctx context.Context) error { return serve.GRPC(ctx, ln, srv) },
		func(ctx context.Context) error { return serve.HTTP(ctx, adminLn, serve.ReadyHandler()) })
}

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := serve.Env(name, "")
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a duration like 20ms", name, v)
	}
	return d, nil
}
