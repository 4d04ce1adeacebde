// Command tap-injector is the viz extension's tap injector (package viz/tapinjector): a
// mutating admission webhook served over HTTPS on -addr with the certificate in
// -tls-cert/-tls-key, and its admin server (/metrics, /ready, /live) on -admin-addr.
package main

import (
	"context"
	"flag"

	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/component"
	"github.com/l5d-go/l5d/pkg/webhook"
	"github.com/l5d-go/l5d/viz/tapinjector"
)

func main() { component.Main("tap-injector", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tap-injector", flag.ContinueOnError)
	serveFlags := webhook.RegisterFlags(fs, "tap-injector")
	vizNS := fs.String("viz-namespace", "linkerd-viz", "namespace of the tap API (its ServiceAccount tap names the identity)")
	controllerNS := fs.String("controller-namespace", "linkerd", "namespace of the Linkerd control plane")
	trustDomain := fs.String("trust-domain", "cluster.local", "the mesh's trust domain")
	common := component.Register(fs, "linkerd-tap-injector", ":9995")
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
	clients, err := comp.Clients()
	if err != nil {
		return err
	}
	id := certs.WorkloadIdentity("tap", *vizNS, *controllerNS, *trustDomain)
	inj := &tapinjector.Injector{TapIdentity: id, Kube: clients.Kube, Log: log}
	adm := comp.Admin
	adm.NewReadyFlag("serving").Set(true)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return comp.ServeAdmin(gctx) })
	g.Go(func() error { return srv.Serve(gctx, inj, log) })
	log.Info("tap-injector starting", "addr", srv.Addr, "admin", comp.AdminAddr, "tap_identity", id)
	return g.Wait()
}
