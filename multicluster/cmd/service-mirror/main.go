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

	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/multicluster/gatewayprobe"
	"github.com/l5d-go/l5d/multicluster/servicemirror"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"github.com/l5d-go/l5d/pkg/component"
)

func main() { component.Main("service-mirror", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("service-mirror", flag.ContinueOnError)
	linkName := fs.String("link-name", "", "name of the Link to serve (required)")
	namespace := fs.String("namespace", mc.Namespace, "namespace of the Link and its credentials Secret")
	common := component.Register(fs, "linkerd-service-mirror", fmt.Sprintf(":%d", mc.AdminPort))
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *linkName == "" {
		return errors.New("-link-name is required (the name of the Link in -namespace)")
	}
	comp, err := common.Start()
	if err != nil {
		return err
	}
	log := comp.Log
	clients, err := comp.Clients()
	if err != nil {
		return err
	}
	reg := comp.Registry
	adm := comp.Admin
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
	g.Go(func() error { return comp.ServeAdmin(gctx) })
	g.Go(func() error { return r.Run(gctx) })
	log.Info("service-mirror starting", "link", *namespace+"/"+*linkName, "admin", comp.AdminAddr)
	return g.Wait()
}
