// Command destination is the l5d destination service: it serves
// io.linkerd.proxy.destination.Destination (Get, GetProfile) on -addr and its admin
// server (/metrics, /ready, /live) on -admin-addr, from shared informers over the cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/destination/cluster"
	"github.com/l5d-go/l5d/destination/remote"
	"github.com/l5d-go/l5d/destination/server"
	"github.com/l5d-go/l5d/destination/spvalidator"
	"github.com/l5d-go/l5d/pkg/component"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/pkg/rpc"
	"github.com/l5d-go/l5d/pkg/webhook"
	pb "github.com/l5d-go/l5d/proto/gen/destination"
)

func main() { component.Main("destination", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("destination", flag.ContinueOnError)
	addr := fs.String("addr", ":8086", "address to serve the Destination gRPC API on")
	controllerNS := fs.String("controller-namespace", "linkerd", "namespace of the control plane")
	clusterDomain := fs.String("cluster-domain", "cluster.local", "the cluster's DNS domain")
	trustDomain := fs.String("identity-trust-domain", "cluster.local", "trust domain of workload identities")
	opaque := fs.String("default-opaque-ports", proxyconf.DefaultOpaquePorts, "ports treated as opaque unless annotated otherwise")
	profiles := fs.Bool("enable-service-profiles", true, "watch ServiceProfiles (needs the CRD)")
	syncTimeout := fs.Duration("sync-timeout", time.Minute, "how long to wait for the informer caches at start")
	maxStreams := fs.Uint("grpc-max-concurrent-streams", rpc.DefaultMaxConcurrentStreams, "gRPC streams one client connection may have open at once (a proxy's watches share one connection)")
	podToPod := fs.Bool("enable-pod-to-pod-multicluster", false, "resolve pod-to-pod multicluster mirrors through the linked clusters' Secrets in -controller-namespace (labelled multicluster.linkerd.io/cluster-name; needs get/list/watch on secrets there)")
	spAddr := fs.String("sp-validator-addr", "", "serve the ServiceProfile validating webhook (HTTPS) on this address; empty disables it")
	spCert := fs.String("sp-validator-cert", "/var/run/linkerd/tls/tls.crt", "the webhook's serving certificate (PEM)")
	spKey := fs.String("sp-validator-key", "/var/run/linkerd/tls/tls.key", "the webhook's serving key (PEM)")
	common := component.Register(fs, "linkerd-destination", ":9996")
	if err := fs.Parse(args); err != nil {
		return err
	}
	comp, err := common.Start()
	if err != nil {
		return err
	}
	log := comp.Log
	if *maxStreams == 0 || *maxStreams > math.MaxUint32 {
		return fmt.Errorf("-grpc-max-concurrent-streams %d: must be between 1 and %d", *maxStreams, uint32(math.MaxUint32))
	}
	def, err := proxyconf.ParsePorts(*opaque)
	if err != nil {
		return fmt.Errorf("-default-opaque-ports: %w", err)
	}
	clients, err := comp.Clients()
	if err != nil {
		return err
	}
	reg := comp.Registry
	adm := comp.Admin
	ready := adm.NewReadyFlag("informers")

	dyn := clients.Dynamic
	if !*profiles {
		dyn = nil
	}
	idx, err := cluster.New(clients.Kube, dyn)
	if err != nil {
		return err
	}
	svc, err := server.New(idx, server.Config{ControllerNamespace: *controllerNS, ClusterDomain: *clusterDomain,
		TrustDomain: *trustDomain, DefaultOpaquePorts: def}, log, reg)
	if err != nil {
		return err
	}
	var store *remote.Store
	if *podToPod {
		store = remote.New(clients.Kube, *controllerNS, log, reg)
		svc.SetRemoteClusters(store)
	}
	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: log, Registerer: reg, MaxConcurrentStreams: uint32(*maxStreams)})
	if err != nil {
		return err
	}
	pb.RegisterDestinationServer(srv.GRPC, svc)
	srv.SetServing("", false)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return comp.ServeAdmin(gctx) })
	if store != nil {
		g.Go(func() error { return store.Run(gctx) })
	}
	g.Go(func() error {
		if err := idx.Start(gctx, *syncTimeout); err != nil {
			return err
		}
		ready.Set(true)
		srv.SetServing("", true)
		log.Info("destination caches synced")
		// As Linkerd's controller does, the API is served only once the caches are synced:
		// answers from empty caches would tell proxies that meshed services are not
		// services, and they would send them plaintext to their original destinations.
		return srv.Serve(gctx, *addr)
	})
	if *spAddr != "" {
		// The certificate is reloaded when the mounted Secret changes, as the injector's is.
		vsrv, err := webhook.NewServer(*spAddr, *spCert, *spKey)
		if err != nil {
			return fmt.Errorf("sp-validator: %w", err)
		}
		metrics := webhook.NewMetrics("sp_validator")
		if err := metrics.Register(reg); err != nil {
			return err
		}
		h := &spvalidator.Handler{ClusterDomain: *clusterDomain, Log: log, Metrics: metrics}
		g.Go(func() error { return vsrv.Serve(gctx, h, log) })
	}
	log.Info("destination service starting", "addr", *addr, "admin", comp.AdminAddr, "cluster_domain", *clusterDomain)
	return g.Wait()
}
