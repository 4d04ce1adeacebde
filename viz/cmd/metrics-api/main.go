// Command metrics-api is the viz extension's metrics API: it serves StatSummary, Edges,
// TopRoutes, ListPods and ListServices (package viz/api, JSON over HTTP on -addr) from
// Prometheus (-prometheus-url) and shared informers over the cluster, and its admin
// server (/metrics, /ready, /live) on -admin-addr. It is ready once its caches are
// synced; the API is served from then on.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/pkg/admin"
	"github.com/l5d-go/l5d/pkg/component"
	"github.com/l5d-go/l5d/viz/metricsapi"
	"github.com/l5d-go/l5d/viz/metricsapi/cluster"
)

func main() { component.Main("metrics-api", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("metrics-api", flag.ContinueOnError)
	addr := fs.String("addr", ":8085", "address to serve the metrics API on")
	promURL := fs.String("prometheus-url", "", "URL of the Prometheus server to query (required)")
	controllerNS := fs.String("controller-namespace", "linkerd", "namespace of the Linkerd control plane")
	clusterDomain := fs.String("cluster-domain", "cluster.local", "the cluster's DNS domain")
	syncTimeout := fs.Duration("sync-timeout", time.Minute, "how long to wait for the informer caches at start")
	profiles := fs.Bool("enable-service-profiles", true, "read ServiceProfiles for route names (needs the CRD)")
	common := component.Register(fs, "linkerd-metrics-api", ":9995")
	if err := fs.Parse(args); err != nil {
		return err
	}
	comp, err := common.Start()
	if err != nil {
		return err
	}
	log := comp.Log
	if *promURL == "" {
		return errors.New("-prometheus-url is required (e.g. http://prometheus.linkerd-viz.svc.cluster.local:9090)")
	}
	if u, err := url.Parse(*promURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-prometheus-url %q: want an http(s) URL such as http://prometheus:9090", *promURL)
	}
	pc, err := promapi.NewClient(promapi.Config{Address: *promURL})
	if err != nil {
		return fmt.Errorf("-prometheus-url: %w", err)
	}
	clients, err := comp.Clients()
	if err != nil {
		return err
	}
	dyn := clients.Dynamic
	if !*profiles {
		dyn = nil
	}
	reg := comp.Registry
	adm := comp.Admin
	ready := adm.NewReadyFlag("informers")
	c := cluster.New(clients.Kube, dyn)
	srv := &metricsapi.Server{Prom: promv1.NewAPI(pc), Cache: c, ClusterDomain: *clusterDomain, Log: log, Metrics: reg}
	hs := &http.Server{Addr: *addr, Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return comp.ServeAdmin(gctx) })
	g.Go(func() error {
		if err := c.Start(gctx, *syncTimeout); err != nil {
			return err
		}
		ready.Set(true)
		log.Info("metrics-api caches synced", "addr", *addr)
		go func() {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), admin.DefaultShutdownTimeout)
			defer cancel()
			_ = hs.Shutdown(sctx)
		}()
		if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving %s: %w", *addr, err)
		}
		return nil
	})
	log.Info("metrics-api starting", "addr", *addr, "admin", comp.AdminAddr, "prometheus", *promURL,
		"controller_namespace", *controllerNS, "cluster_domain", *clusterDomain)
	return g.Wait()
}
