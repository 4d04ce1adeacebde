// Command demo-traffic requests the demo front end at -target at a steady -rate, forever
// (or -count requests), logging a summary line every -log-every requests. On -admin-addr
// it serves its counts so far as JSON at /stats and answers "ready" on every other path.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/l5d-go/l5d/test/demo/serve"
	"github.com/l5d-go/l5d/test/demo/traffic"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-traffic:", err)
		os.Exit(1)
	}
}

func run() error {
	rate, err := serve.EnvFloat("RATE", 10)
	if err != nil {
		return err
	}
	ratio, err := serve.EnvFloat("TRACE_SAMPLE_RATIO", 1)
	if err != nil {
		return err
	}
	opts := traffic.Options{Log: serve.Logger("demo-traffic")}
	flag.Float64Var(&opts.TraceSampleRatio, "trace-sample-ratio", ratio, "share of requests starting a sampled trace, 0 to 1 (env TRACE_SAMPLE_RATIO)")
	flag.StringVar(&opts.Target, "target", serve.Env("TARGET", "http://web.l5d-demo.svc.cluster.local:8080"), "base URL of the front end (env TARGET)")
	flag.Float64Var(&opts.Rate, "rate", rate, "requests started per second (env RATE)")
	flag.IntVar(&opts.LogEvery, "log-every", 100, "log a summary line every this many requests")
	flag.IntVar(&opts.Count, "count", 0, "stop after this many requests (0: run forever)")
	flag.StringVar(&opts.Path, "path", serve.Env("REQUEST_PATH", ""), "GET only this path instead of the front end's rotation (env REQUEST_PATH)")
	flag.IntVar(&opts.MaxInFlight, "max-in-flight", 64, "most concurrent requests")
	adminAddr := flag.String("admin-addr", serve.Env("ADMIN_ADDR", ":9990"), "readiness endpoint listen address (env ADMIN_ADDR)")
	flag.Parse()

	g, err := traffic.New(opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	adminLn, err := serve.Listen("admin", *adminAddr)
	if err != nil {
		return err
	}
	admin := http.NewServeMux()
	admin.Handle("GET /stats", traffic.StatsHandler(g))
	admin.Handle("/", serve.ReadyHandler())
	opts.Log.Info("sending traffic", "target", opts.Target, "rate", opts.Rate)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return serve.Run(ctx,
		func(ctx context.Context) error {
			err := g.Run(ctx)
			cancel() // a finished -count run ends the admin server too
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
		func(ctx context.Context) error { return serve.HTTP(ctx, adminLn, admin) })
}
