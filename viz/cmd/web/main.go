// Command web is the viz extension's dashboard: it serves the dashboard (package
// viz/web) on -addr to requests whose Host matches -enforced-host, relaying metrics
// questions to the metrics-api (-api-addr) and taps to the tap API through the
// Kubernetes API server, and its admin server (/metrics, /ready, /live) on -admin-addr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/pkg/admin"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/logging"
	"github.com/l5d-go/l5d/viz/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "web:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	addr := fs.String("addr", ":8084", "address to serve the dashboard on")
	adminAddr := fs.String("admin-addr", ":9994", "address of the admin server (/metrics, /ready, /live)")
	apiAddr := fs.String("api-addr", "metrics-api.linkerd-viz.svc.cluster.local:8085", "host:port of the metrics-api")
	controllerNS := fs.String("controller-namespace", "linkerd", "namespace of the Linkerd control plane")
	vizNS := fs.String("viz-namespace", "linkerd-viz", "namespace of the viz extension")
	enforced := fs.String("enforced-host", web.DefaultEnforcedHost,
		"regular expression the Host header of a request must match for it to be served (protection against DNS rebinding)")
	kcfg := k8s.RegisterFlags(fs)
	lcfg := logging.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := lcfg.Logger()
	if err != nil {
		return err
	}
	k8s.LogToSlog(log)
	host, err := regexp.Compile(*enforced)
	if err != nil {
		return fmt.Errorf("-enforced-host %q: %w", *enforced, err)
	}
	if *apiAddr == "" || strings.Contains(*apiAddr, "/") {
		return fmt.Errorf("-api-addr %q: want host:port of the metrics-api, e.g. metrics-api.linkerd-viz.svc.cluster.local:8085", *apiAddr)
	}
	kcfg.UserAgent = "linkerd-web"
	clients, err := kcfg.Clients()
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	adm := admin.New(admin.Options{Gatherer: reg, Logger: log})
	adm.NewReadyFlag("serving").Set(true)
	srv := &web.Server{
		MetricsAPI:   &url.URL{Scheme: "http", Host: *apiAddr},
		Tap:          clients.Kube.Discovery().RESTClient(),
		Kube:         clients.Kube,
		Health:       []string{*controllerNS, *vizNS},
		EnforcedHost: host,
		Log:          log,
	}
	hs := &http.Server{Addr: *addr, Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return adm.Serve(gctx, *adminAddr) })
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), admin.DefaultShutdownTimeout)
		defer cancel()
		return hs.Shutdown(sctx)
	})
	g.Go(func() error {
		if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving %s: %w", *addr, err)
		}
		return nil
	})
	log.Info("web starting", "addr", *addr, "admin", *adminAddr, "metrics_api", *apiAddr, "enforced_host", *enforced)
	return g.Wait()
}
