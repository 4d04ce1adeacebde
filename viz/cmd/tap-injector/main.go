// Command tap-injector is the viz extension's tap injector (package viz/tapinjector): a
// mutating admission webhook served over HTTPS on -addr with the certificate in
// -tls-cert/-tls-key, and its admin server (/metrics, /ready, /live) on -admin-addr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/pkg/admin"
	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/logging"
	"github.com/l5d-go/l5d/pkg/servingcert"
	"github.com/l5d-go/l5d/pkg/webhook"
	"github.com/l5d-go/l5d/viz/tapinjector"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tap-injector:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tap-injector", flag.ContinueOnError)
	addr := fs.String("addr", ":8443", "address to serve the webhook on (HTTPS)")
	adminAddr := fs.String("admin-addr", ":9995", "address of the admin server (/metrics, /ready, /live)")
	certFile := fs.String("tls-cert", "", "serving certificate (PEM) for tap-injector.<namespace>.svc (required)")
	keyFile := fs.String("tls-key", "", "serving certificate's key (PEM) (required)")
	vizNS := fs.String("viz-namespace", "linkerd-viz", "namespace of the tap API (its ServiceAccount tap names the identity)")
	controllerNS := fs.String("controller-namespace", "linkerd", "namespace of the Linkerd control plane")
	trustDomain := fs.String("trust-domain", "cluster.local", "the mesh's trust domain")
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
	if *certFile == "" || *keyFile == "" {
		return errors.New("-tls-cert and -tls-key are required (the API server calls webhooks over HTTPS)")
	}
	serving, err := servingcert.New(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	kcfg.UserAgent = "linkerd-tap-injector"
	clients, err := kcfg.Clients()
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	id := certs.WorkloadIdentity("tap", *vizNS, *controllerNS, *trustDomain)
	inj := &tapinjector.Injector{TapIdentity: id, Kube: clients.Kube, Log: log}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	adm := admin.New(admin.Options{Gatherer: reg, Logger: log})
	adm.NewReadyFlag("serving").Set(true)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return adm.Serve(gctx, *adminAddr) })
	g.Go(func() error { return webhook.ServeTLS(gctx, *addr, inj, serving.GetCertificate, log) })
	log.Info("tap-injector starting", "addr", *addr, "admin", *adminAddr, "tap_identity", id)
	return g.Wait()
}
