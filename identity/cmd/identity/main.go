// Command identity is the l5d identity service: the mesh certificate authority. It serves
// io.linkerd.proxy.identity.Identity/Certify on -addr and its admin server (/metrics,
// /ready, /live) on -admin-addr.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/identity/certify"
	"github.com/l5d-go/l5d/identity/issuer"
	"github.com/l5d-go/l5d/pkg/component"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/rpc"
	pb "github.com/l5d-go/l5d/proto/gen/identity"
)

func main() { component.Main("identity", run) }

// run serves until ctx ends or something fails.
func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("identity", flag.ContinueOnError)
	addr := fs.String("addr", ":8080", "address to serve the Identity gRPC API on")
	controllerNS := fs.String("controller-namespace", certify.DefaultControllerNS, "namespace of the control plane")
	trustDomain := fs.String("identity-trust-domain", certify.DefaultTrustDomain, "trust domain of workload identities")
	lifetime := fs.Duration("identity-issuance-lifetime", certify.DefaultLifetime, "lifetime of issued certificates")
	skew := fs.Duration("identity-clock-skew-allowance", certify.DefaultClockSkew, "how far certificates are backdated (and extended) for clock skew")
	scheme := fs.String("identity-scheme", issuer.SchemeLinkerd, "issuer Secret format: linkerd.io/tls (crt.pem, key.pem) or kubernetes.io/tls (tls.crt, tls.key)")
	source := fs.String("issuer-source", "files", "where the issuer comes from: files (the mounted Secret and trust-roots ConfigMap, as Linkerd mounts them) or api (watch both objects through the API server)")
	issuerDir := fs.String("issuer", issuer.DefaultIssuerDir, "directory where the issuer Secret is mounted (-issuer-source files)")
	anchorsFile := fs.String("identity-trust-anchors-file", issuer.DefaultTrustAnchorsFile, "PEM trust anchors mounted from the trust-roots ConfigMap (-issuer-source files)")
	secret := fs.String("identity-issuer-secret", issuer.DefaultSecretName, "name of the issuer Secret (read with -issuer-source api; named in errors and Events)")
	roots := fs.String("identity-trust-roots-configmap", issuer.DefaultTrustRootsMap, "name of the ConfigMap holding the trust anchors under ca-bundle.crt (-issuer-source api)")
	audience := fs.Bool("require-token-audience", false, "refuse tokens not minted for audience identity.l5d.io (by default, as in Linkerd, tokens without it are reviewed for the API server's own audiences)")
	qps := fs.Float64("kube-apiclient-qps", 100, "maximum queries per second to the Kubernetes API")
	burst := fs.Int("kube-apiclient-burst", 200, "maximum burst of queries to the Kubernetes API")
	reviews := fs.Int("max-concurrent-token-reviews", certify.DefaultMaxConcurrentReviews, "TokenReviews in flight at most; further Certify calls wait")
	reviewsPerPeer := fs.Int("max-concurrent-token-reviews-per-peer", 0, "TokenReviews in flight at most for one caller: its address, or the identity it requests when it comes through a proxy on loopback such as the pod's own (default half of -max-concurrent-token-reviews)")
	waiting := fs.Int("max-waiting-token-reviews", certify.DefaultMaxWaitingReviews, "Certify calls waiting for a TokenReview at most; further calls get ResourceExhausted at once")
	waitingPerPeer := fs.Int("max-waiting-token-reviews-per-peer", certify.DefaultMaxWaitingPerPeer, "Certify calls of one caller (as for -max-concurrent-token-reviews-per-peer) waiting for a TokenReview at most; further calls get ResourceExhausted at once")
	startTimeout := fs.Duration("startup-timeout", time.Minute, "how long to wait for a valid issuer at start")
	maxStreams := fs.Uint("grpc-max-concurrent-streams", rpc.DefaultMaxConcurrentStreams, "gRPC streams one client connection may have open at once (a proxy's watches share one connection)")
	common := component.Register(fs, "linkerd-identity", ":9990")
	if err := fs.Parse(args); err != nil {
		return err
	}
	comp, err := common.Start()
	if err != nil {
		return err
	}
	log := comp.Log
	if _, _, err := issuer.KeyNames(*scheme); err != nil {
		return fmt.Errorf("-identity-scheme: %w", err)
	}
	if *source != "files" && *source != "api" {
		return fmt.Errorf("-issuer-source %q: want files or api", *source)
	}
	if *lifetime <= 0 || *skew <= 0 {
		return fmt.Errorf("-identity-issuance-lifetime (%s) and -identity-clock-skew-allowance (%s) must be positive", *lifetime, *skew)
	}
	for name, v := range map[string]int{"max-concurrent-token-reviews": *reviews, "max-waiting-token-reviews": *waiting,
		"max-waiting-token-reviews-per-peer": *waitingPerPeer} {
		if v <= 0 {
			return fmt.Errorf("-%s %d: must be positive", name, v)
		}
	}
	if *reviewsPerPeer < 0 || *reviewsPerPeer > *reviews {
		return fmt.Errorf("-max-concurrent-token-reviews-per-peer %d: must be between 1 and -max-concurrent-token-reviews (%d), or 0 for half of it", *reviewsPerPeer, *reviews)
	}
	if *maxStreams == 0 || *maxStreams > math.MaxUint32 {
		return fmt.Errorf("-grpc-max-concurrent-streams %d: must be between 1 and %d", *maxStreams, uint32(math.MaxUint32))
	}
	if err := certify.CheckNames(*controllerNS, *trustDomain); err != nil {
		return err
	}
	kcfg := comp.Kube()
	kcfg.QPS, kcfg.Burst = float32(*qps), *burst
	clients, err := comp.Clients()
	if err != nil {
		return err
	}
	if err := k8s.CheckPermissions(ctx, clients.Kube, []k8s.Permission{{Verb: "create", Group: "authentication.k8s.io", Resource: "tokenreviews"}}); err != nil {
		return fmt.Errorf("cannot review ServiceAccount tokens: %w", err)
	}
	if err := k8s.CheckPermissions(ctx, clients.Kube, []k8s.Permission{{Verb: "create", Resource: "events", Namespace: *controllerNS}}); err != nil {
		log.Warn("issuer rotations will only be logged, not recorded as Kubernetes Events", "error", err)
	}
	reg := comp.Registry
	adm := comp.Admin
	ready := adm.NewReadyFlag("issuer")

	store := &issuer.Store{}
	issuerMetrics := issuer.NewMetrics()
	if err := issuerMetrics.Register(reg); err != nil {
		return err
	}
	events := &issuer.EventRecorder{Client: clients.Kube, Namespace: *controllerNS, SecretName: *secret, Component: "linkerd-identity"}
	var watcher interface {
		Start(ctx context.Context, timeout time.Duration) error
	}
	switch *source {
	case "files":
		watcher = &issuer.FileWatcher{Dir: *issuerDir, Scheme: *scheme, TrustAnchorsFile: *anchorsFile,
			Source: fmt.Sprintf("Secret %s/%s", *controllerNS, *secret), Store: store, Log: log, Metrics: issuerMetrics, Events: events}
	case "api":
		watcher = &issuer.Watcher{Client: clients.Kube, Namespace: *controllerNS, SecretName: *secret,
			TrustRootsName: *roots, Store: store, Log: log, Metrics: issuerMetrics, Events: events}
	}
	metrics := certify.NewMetrics()
	if err := metrics.Register(reg); err != nil {
		return err
	}
	svc := certify.New(certify.Options{
		Issuer: store,
		Reviewer: certify.NewTokenReviewer(clients.Kube, certify.ReviewOptions{Audience: certify.TokenAudience,
			RequireAudience: *audience, MaxConcurrent: *reviews, MaxConcurrentPerPeer: *reviewsPerPeer,
			MaxWaiting: *waiting, MaxWaitingPerPeer: *waitingPerPeer, Metrics: metrics}),
		TrustDomain: *trustDomain, ControllerNS: *controllerNS, Lifetime: *lifetime, ClockSkew: *skew,
		Log: log, Metrics: metrics,
	})
	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: log, Registerer: reg, MaxConcurrentStreams: uint32(*maxStreams)})
	if err != nil {
		return err
	}
	pb.RegisterIdentityServer(srv.GRPC, svc)
	srv.SetServing("", false)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return comp.ServeAdmin(gctx) })
	g.Go(func() error {
		if err := watcher.Start(gctx, *startTimeout); err != nil {
			return err
		}
		ready.Set(true)
		srv.SetServing("", true)
		return nil
	})
	g.Go(func() error { return srv.Serve(gctx, *addr) })
	log.Info("identity service starting", "addr", *addr, "admin", comp.AdminAddr, "trust_domain", *trustDomain, "namespace", *controllerNS)
	return g.Wait()
}
