// Command identity is the l5d identity service: the mesh certificate authority. It serves
// io.linkerd.proxy.identity.Identity/Certify on -addr and its admin server (/metrics,
// /ready, /live) on -admin-addr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/identity/certify"
	"github.com/l5d-go/l5d/identity/issuer"
	"github.com/l5d-go/l5d/pkg/admin"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/logging"
	"github.com/l5d-go/l5d/pkg/rpc"
	pb "github.com/l5d-go/l5d/proto/gen/identity"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "identity:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends or something fails.
func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("identity", flag.ContinueOnError)
	addr := fs.String("addr", ":8080", "address to serve the Identity gRPC API on")
	adminAddr := fs.String("admin-addr", ":9990", "address of the admin server (/metrics, /ready, /live)")
	controllerNS := fs.String("controller-namespace", certify.DefaultControllerNS, "namespace of the control plane")
	trustDomain := fs.String("identity-trust-domain", certify.DefaultTrustDomain, "trust domain of workload identities")
	lifetime := fs.Duration("identity-issuance-lifetime", certify.DefaultLifetime, "lifetime of issued certificates")
	skew := fs.Duration("identity-clock-skew-allowance", certify.DefaultClockSkew, "how far certificates are backdated (and extended) for clock skew")
	secret := fs.String("identity-issuer-secret", issuer.DefaultSecretName, "Secret holding the issuer (crt.pem/key.pem, or tls.crt/tls.key for the kubernetes.io/tls scheme)")
	roots := fs.String("identity-trust-roots-configmap", issuer.DefaultTrustRootsMap, "ConfigMap holding the trust anchors under ca-bundle.crt")
	reviews := fs.Int("max-concurrent-token-reviews", certify.DefaultMaxConcurrentReviews, "TokenReviews in flight at most; further Certify calls wait")
	startTimeout := fs.Duration("startup-timeout", time.Minute, "how long to wait for a valid issuer at start")
	pprof := fs.Bool("enable-pprof", false, "serve /debug/pprof/ on the admin server")
	kcfg := k8s.RegisterFlags(fs)
	lcfg := logging.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := lcfg.Logger()
	if err != nil {
		return err
	}
	kcfg.UserAgent = "linkerd-identity"
	clients, err := kcfg.Clients()
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	adm := admin.New(admin.Options{Gatherer: reg, EnablePprof: *pprof, Logger: log})
	ready := adm.NewReadyFlag("issuer")

	store := &issuer.Store{}
	watcher := &issuer.Watcher{Client: clients.Kube, Namespace: *controllerNS, SecretName: *secret,
		TrustRootsName: *roots, Store: store, Log: log, Component: "linkerd-identity"}
	if err := watcher.Register(reg); err != nil {
		return err
	}
	metrics := certify.NewMetrics()
	if err := metrics.Register(reg); err != nil {
		return err
	}
	svc := certify.New(certify.Options{
		Issuer:      store,
		Reviewer:    certify.NewTokenReviewer(clients.Kube, certify.TokenAudience, *reviews, metrics),
		TrustDomain: *trustDomain, ControllerNS: *controllerNS, Lifetime: *lifetime, ClockSkew: *skew,
		Log: log, Metrics: metrics,
	})
	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	pb.RegisterIdentityServer(srv.GRPC, svc)
	srv.SetServing("", false)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return adm.Serve(gctx, *adminAddr) })
	g.Go(func() error {
		if err := watcher.Start(gctx, *startTimeout); err != nil {
			return err
		}
		ready.Set(true)
		srv.SetServing("", true)
		return nil
	})
	g.Go(func() error { return srv.Serve(gctx, *addr) })
	log.Info("identity service starting", "addr", *addr, "admin", *adminAddr, "trust_domain", *trustDomain, "namespace", *controllerNS)
	return g.Wait()
}
