// Command tap-injector is the viz extension's tap injector (package viz/tapinjector): a
// mutating admission webhook served over HTTPS on -addr with the certificate in
// -tls-cert/-tls-key, and its admin server (/metrics, /ready, /live) on -admin-addr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/component"
	"github.com/l5d-go/l5d/pkg/servingcert"
	"github.com/l5d-go/l5d/pkg/webhook"
	"github.com/l5d-go/l5d/viz/tapinjector"
)

func main() { component.Main("tap-injector", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tap-injector", flag.ContinueOnError)
	addr := fs.String("addr", ":8443", "address to serve the webhook on (HTTPS)")
	certFile := fs.String("tls-cert", "", "serving certificate (PEM) for tap-injector.<namespace>.svc (required)")
	keyFile := fs.String("tls-key", "", "serving certificate's key (PEM) (required)")
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
	if *certFile == "" || *keyFile == "" {
		return errors.New("-tls-cert and -tls-key are required (the API server calls webhooks over HTTPS)")
	}
	serving, err := servingcert.New(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
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
	g.Go(func() error { return webhook.ServeTLS(gctx, *addr, inj, serving.GetCertificate, log) })
	log.Info("tap-injector starting", "addr", *addr, "admin", comp.AdminAddr, "tap_identity", id)
	return g.Wait()
}
