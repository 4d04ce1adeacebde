// Command tap is the viz extension's tap API (package viz/tap): an aggregated Kubernetes
// API served over HTTPS on -addr with the certificate in -tls-cert/-tls-key, reached
// through the APIService v1alpha1.tap.linkerd.io, and its admin server (/metrics, /ready,
// /live) on -admin-addr. It dials the proxies' tap ports in plaintext through its own
// proxy (the tap pod is meshed, as Linkerd's), or, with -client-cert, -client-key and
// -trust-anchors, with mTLS itself.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/pkg/admin"
	"github.com/l5d-go/l5d/pkg/component"
	"github.com/l5d-go/l5d/pkg/servingcert"
	"github.com/l5d-go/l5d/viz/metricsapi/cluster"
	"github.com/l5d-go/l5d/viz/tap"
)

func main() { component.Main("tap", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tap", flag.ContinueOnError)
	addr := fs.String("addr", ":8089", "address to serve the tap API on (HTTPS)")
	certFile := fs.String("tls-cert", "", "serving certificate (PEM), for the name <service>.<namespace>.svc (required)")
	keyFile := fs.String("tls-key", "", "serving certificate's key (PEM) (required)")
	clientCert := fs.String("client-cert", "", "certificate (PEM) of the tap identity to present to the proxies; empty dials them in plaintext through this pod's proxy")
	clientKey := fs.String("client-key", "", "key (PEM) of -client-cert")
	anchors := fs.String("trust-anchors", "", "trust anchors (PEM) the proxies' certificates chain to (with -client-cert)")
	controllerNS := fs.String("controller-namespace", "linkerd", "namespace of the Linkerd control plane (names the proxies' identities)")
	trustDomain := fs.String("trust-domain", "cluster.local", "the mesh's trust domain (names the proxies' identities)")
	syncTimeout := fs.Duration("sync-timeout", time.Minute, "how long to wait for the informer caches at start")
	common := component.Register(fs, "linkerd-tap", ":9998")
	if err := fs.Parse(args); err != nil {
		return err
	}
	comp, err := common.Start()
	if err != nil {
		return err
	}
	log := comp.Log
	if *certFile == "" || *keyFile == "" {
		return errors.New("-tls-cert and -tls-key are required (the API server calls the tap API over HTTPS)")
	}
	serving, err := servingcert.New(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	var proxies tap.Proxies = tap.MeshedProxies{Log: log}
	if *clientCert != "" || *clientKey != "" || *anchors != "" {
		if *clientCert == "" || *clientKey == "" || *anchors == "" {
			return errors.New("-client-cert, -client-key and -trust-anchors go together")
		}
		pem, err := os.ReadFile(*anchors)
		if err != nil {
			return fmt.Errorf("-trust-anchors: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-trust-anchors %s: no PEM certificate", *anchors)
		}
		client, err := servingcert.New(*clientCert, *clientKey)
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		proxies = &tap.MTLSProxies{
			Certificate: func() (*tls.Certificate, error) { return client.GetCertificate(nil) },
			Roots:       roots, ControlPlaneNamespace: *controllerNS, TrustDomain: *trustDomain, Log: log,
		}
	}
	clients, err := comp.Clients()
	if err != nil {
		return err
	}
	adm := comp.Admin
	ready := adm.NewReadyFlag("informers")
	c := cluster.New(clients.Kube, nil)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return comp.ServeAdmin(gctx) })
	g.Go(func() error {
		auth, err := tap.LoadRequestHeader(gctx, clients.Kube)
		if err != nil {
			return err
		}
		if err := c.Start(gctx, *syncTimeout); err != nil {
			return err
		}
		srv := &tap.Server{Kube: clients.Kube, Cache: c, Auth: auth, Proxies: proxies, Log: log}
		hs := &http.Server{
			Addr: *addr, Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: serving.GetCertificate, ClientAuth: tls.RequestClientCert},
		}
		ready.Set(true)
		log.Info("tap API ready", "addr", *addr)
		go func() {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), admin.DefaultShutdownTimeout)
			defer cancel()
			_ = hs.Shutdown(sctx)
		}()
		if err := hs.ListenAndServeTLS("", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving %s: %w", *addr, err)
		}
		return nil
	})
	log.Info("tap starting", "addr", *addr, "admin", comp.AdminAddr, "controller_namespace", *controllerNS, "trust_domain", *trustDomain)
	return g.Wait()
}
