// Command jaeger-injector is the jaeger extension's injector (package jaeger/injector): a
// mutating admission webhook served over HTTPS on -addr with the certificate in
// -tls-cert/-tls-key, and its admin server (/metrics, /ready, /live) on -admin-addr.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"

	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/jaeger/injector"
	"github.com/l5d-go/l5d/pkg/component"
	"github.com/l5d-go/l5d/pkg/webhook"
)

func main() { component.Main("jaeger-injector", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jaeger-injector", flag.ContinueOnError)
	serveFlags := webhook.RegisterFlags(fs, "jaeger-injector")
	collectorAddr := fs.String("collector-svc-addr", "jaeger.linkerd-jaeger:4317", "the trace collector's host:port the proxies export spans to")
	collectorSA := fs.String("collector-svc-account", "jaeger", "the collector's service account (its mesh identity)")
	serviceName := fs.String("collector-trace-svc-name", "linkerd-proxy", "the service name of the proxies' spans")
	controllerNS := fs.String("linkerd-namespace", "linkerd", "namespace of the Linkerd control plane")
	trustDomain := fs.String("trust-domain", "cluster.local", "the mesh's trust domain")
	common := component.Register(fs, "linkerd-jaeger-injector", ":9995")
	if err := fs.Parse(args); err != nil {
		return err
	}
	comp, err := common.Start()
	if err != nil {
		return err
	}
	log := comp.Log
	srv, err := serveFlags.Server()
	if err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(*collectorAddr); err != nil {
		return fmt.Errorf("-collector-svc-addr %q: want host:port", *collectorAddr)
	}
	clients, err := comp.Clients()
	if err != nil {
		return err
	}
	reg := comp.Registry
	metrics := webhook.NewMetrics("jaeger_injector")
	if err := metrics.Register(reg); err != nil {
		return err
	}
	inj := &injector.Injector{CollectorAddr: *collectorAddr, CollectorServiceAccount: *collectorSA, ServiceName: *serviceName,
		LinkerdNamespace: *controllerNS, TrustDomain: *trustDomain, Kube: clients.Kube, Metrics: metrics, Log: log}
	adm := comp.Admin
	adm.NewReadyFlag("serving").Set(true)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return comp.ServeAdmin(gctx) })
	g.Go(func() error { return srv.Serve(gctx, inj, log) })
	log.Info("jaeger-injector starting", "addr", srv.Addr, "admin", comp.AdminAddr, "collector", *collectorAddr)
	return g.Wait()
}
