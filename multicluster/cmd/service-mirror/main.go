// Command service-mirror is the multicluster extension's service mirror controller for
// one Link (package multicluster/servicemirror): it mirrors the linked cluster's exported
// Services into this one, probes the linked cluster's gateway, and serves its admin
// server (/metrics, /ready, /live) on -admin-addr. It is ready once the Link is loaded
// and the linked cluster's Services have been listed.
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

	"github.com/l5d-go/l5d/multicluster/gatewayprobe"
	"github.com/l5d-go/l5d/multicluster/servicemirror"
	"github.com/l5d-go/l5d/pkg/admin"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "service-mirror:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("service-mirror", flag.ContinueOnError)
	linkName := fs.String("link-name", "", "name of the Link to serve (required)")
	namespace := fs.String("namespace", mc.Namespace, "namespace of the Link and its credentials Secret")
	adminAddr := fs.String("admin-addr", fmt.Sprintf(":%d", mc.AdminPort), "address of the admin server (/metrics, /ready, /live)")
	kcfg := k8s.RegisterFlags(fs)
	lcfg := logging.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *linkName == "" {
		return errors.New("-link-name is required (the name of the Link in -namespace)")
	}
	log, err := lcfg.Logger()
	if err != nil {
		return err
	}
	k8s.LogToSlog(log)
	kcfg.UserAgent = "linkerd-service-mirror"
	clients, err := kcfg.Clients()
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	adm := admin.New(admin.Options{Gatherer: reg, Logger: log})
	r := &servicemirror.LinkRunner{
		Name: *linkName, Namespace: *namespace, Local: clients.Kube, Dynamic: clients.Dynamic, Log: log,
		Metrics: servicemirror.NewMetrics(reg), ProbeMetrics: gatewayprobe.NewMetrics(reg),
	}
	adm.AddCheck("link", func() error {
		if !r.Running() {
			return fmt.Errorf("link %s/%s not loaded or the linked cluster's services not listed yet", *namespace, *linkName)
		}
		return nil
	})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return adm.Serve(gctx, *adminAddr) })
	g.Go(func() error { return r.Run(gctx) })
	log.Info("service-mirror starting", "link", *namespace+"/"+*linkName, "admin", *adminAddr)
	return g.Wait()
}
