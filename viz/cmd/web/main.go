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
	"regexp"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/pkg/admin"
	"github.com/l5d-go/l5d/pkg/component"
	"github.com/l5d-go/l5d/viz/web"
)

func main() { component.Main("web", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	addr := fs.String("addr", ":8084", "address to serve the dashboard on")
	apiAddr := fs.String("api-addr", "metrics-api.linkerd-viz.svc.cluster.local:8085", "host:port of the metrics-api")
	controllerNS := fs.String("controller-namespace", "linkerd", "namespace of the Linkerd control plane")
	vizNS := fs.String("viz-namespace", "linkerd-viz", "namespace of the viz extension")
	enforced := fs.String("enforced-host", web.DefaultEnforcedHost,
		"regular expression the Host header of a request must match for it to be served (protection against DNS rebinding)")
	common := component.Register(fs, "linkerd-web", ":9994")
	if err := fs.Parse(args); err != nil {
		return err
	}
	comp, err := common.Start()
	if err != nil {
		return err
	}
	log := comp.Log
	host, err := regexp.Compile(*enforced)
	if err != nil {
		return fmt.Errorf("-enforced-host %q: %w", *enforced, err)
	}
	if *apiAddr == "" || strings.Contains(*apiAddr, "/") {
		return fmt.Errorf("-api-addr %q: want host:port of the metrics-api, e.g. metrics-api.linkerd-viz.svc.cluster.local:8085", *apiAddr)
	}
	clients, err := comp.Clients()
	if err != nil {
		return err
	}
	adm := comp.Admin
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
	g.Go(func() error { return comp.ServeAdmin(gctx) })
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
	log.Info("web starting", "addr", *addr, "admin", comp.AdminAddr, "metrics_api", *apiAddr, "enforced_host", *enforced)
	return g.Wait()
}
