// Command proxy is the l5d data-plane proxy. It is configured only through
// LINKERD2_PROXY_* environment variables (see package config) and stops at start, naming
// the variable, when one is invalid.
//
// Build it with -tags grpcnotrace (make build, the image and the benchmarks do): grpc-go
// then leaves out its x/net/trace support, which the proxy never enables and which links
// html/template and text/template, 2.3 MB of code of the 14 MB the proxy maps (2 MB of
// resident memory per proxy).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/l5d-go/l5d/proxy/app"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/logstream"
	"github.com/l5d-go/l5d/proxy/origdst"
)

// version is the proxy's release, set by make (-X main.version); it labels
// proxy_build_info.
var version string

// pprofEnv set to "true" serves the Go profiler on the admin port (loopback only).
const pprofEnv = "L5D_PROXY_PPROF"

func main() {
	if os.Getenv(pprofEnv) != "true" {
		// Nobody can read a heap profile without pprof: sampling allocations for one only
		// costs CPU and the profiler's hash table (about 1.4 MB, much of it resident).
		runtime.MemProfileRate = 0
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "proxy:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.FromEnviron()
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, hopts)
	if cfg.LogFormat == config.LogJSON {
		h = slog.NewJSONHandler(os.Stderr, hopts)
	}
	logs := logstream.New()
	log := slog.New(logs.Handler(h))
	slog.SetDefault(log)

	if _, set := os.LookupEnv("GOMAXPROCS"); !set { // GOMAXPROCS in the environment wins
		runtime.GOMAXPROCS(cfg.Workers(runtime.GOMAXPROCS(0)))
	}
	// One warning for all of them: injectors (Linkerd's and l5d's) write several by default.
	if names := config.SetUnsupported(os.LookupEnv); len(names) > 0 {
		log.Warn("environment variables not supported by this proxy; ignored (reasons at debug level)", "names", names)
		for _, name := range names {
			log.Debug("environment variable ignored", "name", name, "why", config.Unsupported[name])
		}
	}
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := app.Start(ctx, cfg, app.Options{
		OrigDst: origdst.Lookup,
		Level:   level,
		Pprof:   os.Getenv(pprofEnv) == "true",
		Version: version,
		Log:     log,
		Logs:    logs,
	})
	if err != nil {
		return err
	}
	return p.Wait()
}
