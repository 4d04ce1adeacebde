// Command policy is the l5d policy controller: it serves
// io.linkerd.proxy.inbound.InboundServerPolicies and io.linkerd.proxy.outbound.OutboundPolicies
// on -addr and its admin server on -admin-addr, from shared informers over pods, namespaces,
// Services and policy.linkerd.io resources; with -validator-addr it also serves the
// linkerd-policy-validator admission webhook over HTTPS.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/l5d-go/l5d/pkg/component"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/pkg/rpc"
	"github.com/l5d-go/l5d/pkg/webhook"
	"github.com/l5d-go/l5d/policy/inbound"
	"github.com/l5d-go/l5d/policy/outbound"
	"github.com/l5d-go/l5d/policy/status"
	"github.com/l5d-go/l5d/policy/validator"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	pbout "github.com/l5d-go/l5d/proto/gen/outbound"
)

func main() { component.Main("policy", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("policy", flag.ContinueOnError)
	addr := fs.String("addr", ":8090", "address to serve the policy gRPC API on")
	controllerNS := fs.String("control-plane-namespace", "linkerd", "namespace of the control plane")
	clusterDomain := fs.String("cluster-domain", "cluster.local", "Kubernetes cluster domain of Service names")
	trustDomain := fs.String("identity-domain", "cluster.local", "trust domain of workload identities")
	defaultPolicy := fs.String("default-policy", inbound.AllUnauthenticated, "cluster default inbound policy: all-unauthenticated, all-authenticated, cluster-unauthenticated, cluster-authenticated, deny or audit")
	clusterNetworks := fs.String("cluster-networks", "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16", "comma-separated CIDRs of the cluster's networks")
	opaque := fs.String("default-opaque-ports", proxyconf.DefaultOpaquePorts, "ports treated as opaque unless annotated otherwise")
	egressNS := fs.String("global-egress-network-namespace", outbound.DefaultGlobalEgressNamespace, "namespace whose EgressNetworks apply to clients in every namespace")
	detect := fs.Duration("default-detect-timeout", 10*time.Second, "protocol detection timeout announced to proxies")
	validatorAddr := fs.String("validator-addr", "", "serve the policy validating admission webhook (HTTPS) on this address, e.g. :9443; empty disables it")
	validatorCert := fs.String("validator-cert", "/var/run/linkerd/tls/tls.crt", "the webhook's serving certificate (PEM), from the linkerd-policy-validator-k8s-tls Secret")
	validatorKey := fs.String("validator-key", "/var/run/linkerd/tls/tls.key", "the webhook's serving key (PEM)")
	identity := fs.String("status-identity", os.Getenv("POD_NAME"), "this replica's identity in the route status lease (default $POD_NAME; empty disables route status writes)")
	syncTimeout := fs.Duration("sync-timeout", time.Minute, "how long to wait for the informer caches at start")
	common := component.Register(fs, "linkerd-policy", ":9990")
	if err := fs.Parse(args); err != nil {
		return err
	}
	comp, err := common.Start()
	if err != nil {
		return err
	}
	log := comp.Log
	if !inbound.ValidDefault(*defaultPolicy) {
		return fmt.Errorf("-default-policy %q: want all-unauthenticated, all-authenticated, cluster-unauthenticated, cluster-authenticated, deny or audit", *defaultPolicy)
	}
	nets, err := proxyconf.ParseNetworks(*clusterNetworks)
	if err != nil {
		return fmt.Errorf("-cluster-networks: %w", err)
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
	idx, outIdx, err := newIndexes(clients)
	if err != nil {
		return err
	}
	svc := inbound.New(idx, inbound.Config{DefaultPolicy: *defaultPolicy, ClusterNetworks: nets, ControllerNS: *controllerNS,
		TrustDomain: *trustDomain, DetectTimeout: *detect, DefaultOpaquePorts: def}, log)
	outSvc := outbound.New(outIdx, outbound.Config{ClusterDomain: *clusterDomain, DetectTimeout: *detect, DefaultOpaquePorts: def,
		ClusterNetworks: nets, GlobalEgressNamespace: *egressNS}, log)
	srv, err := rpc.NewServer(rpc.ServerOptions{Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	pb.RegisterInboundServerPoliciesServer(srv.GRPC, svc)
	pbout.RegisterOutboundPoliciesServer(srv.GRPC, outSvc)
	srv.SetServing("", false)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return comp.ServeAdmin(gctx) })
	g.Go(func() error {
		if err := startIndexes(gctx, idx, outIdx, *syncTimeout); err != nil {
			return err
		}
		ready.Set(true)
		srv.SetServing("", true)
		if *identity == "" {
			log.Warn("no -status-identity or POD_NAME: not writing route status")
			return nil
		}
		return status.New(outIdx, clients.Kube, clients.Dynamic, status.Config{Namespace: *controllerNS, Identity: *identity, ClusterNetworks: nets}, log).Run(gctx)
	})
	g.Go(func() error { return srv.Serve(gctx, *addr) })
	if *validatorAddr != "" {
		// The certificate is reloaded when the mounted Secret changes, as the injector's is.
		vsrv, err := webhook.NewServer(*validatorAddr, *validatorCert, *validatorKey)
		if err != nil {
			return fmt.Errorf("policy validator: %w", err)
		}
		metrics := webhook.NewMetrics("policy_validator")
		if err := metrics.Register(reg); err != nil {
			return err
		}
		h := &validator.Handler{Log: log, Metrics: metrics}
		g.Go(func() error { return vsrv.Serve(gctx, h, log) })
	}
	log.Info("policy controller starting", "addr", *addr, "validator_addr", *validatorAddr, "default_policy", *defaultPolicy)
	return g.Wait()
}

// newIndexes builds the inbound and outbound indexes over one informer set, so that the
// kinds both read (the route kinds) are watched once.
func newIndexes(clients *k8s.Clients) (*inbound.Index, *outbound.Index, error) {
	inf := k8s.NewInformers(clients.Kube, clients.Dynamic)
	in, err := inbound.NewIndex(inf)
	if err != nil {
		return nil, nil, fmt.Errorf("inbound index: %w", err)
	}
	out, err := outbound.NewIndex(inf)
	if err != nil {
		return nil, nil, fmt.Errorf("outbound index: %w", err)
	}
	return in, out, nil
}

// startIndexes starts the indexes' shared informers and waits for their caches, at most
// timeout each.
func startIndexes(ctx context.Context, in *inbound.Index, out *outbound.Index, timeout time.Duration) error {
	if err := in.Start(ctx, timeout); err != nil {
		return err
	}
	return out.Start(ctx, timeout)
}
