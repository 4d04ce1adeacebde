// Package mesh tests the control plane and the data plane together: the identity,
// destination and policy (inbound and outbound) services (the same packages as their binaries) against a real
// kube-apiserver, serving proxies that run as real processes in network-namespace pods
// behind proxy-init's iptables rules.
package mesh

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/destination/cluster"
	dstserver "github.com/l5d-go/l5d/destination/server"
	"github.com/l5d-go/l5d/identity/certify"
	"github.com/l5d-go/l5d/identity/issuer"
	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/policy/inbound"
	"github.com/l5d-go/l5d/policy/outbound"
	pbdst "github.com/l5d-go/l5d/proto/gen/destination"
	pbid "github.com/l5d-go/l5d/proto/gen/identity"
	pbin "github.com/l5d-go/l5d/proto/gen/inbound"
	pbout "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/netns"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{ControllerManager: true}) }

const trustDomain = "cluster.local"

// controlPlane runs identity, destination and policy with listeners in the node
// namespace (reachable from every pod at the bridge address) and API access from the
// test's namespace.
type controlPlane struct {
	ns         string
	anchorsPEM string
	idName     string
	dstName    string
	// serve starts the three gRPC servers on their node-namespace addresses; stop kills
	// them (their connections included), as losing the control-plane pods would.
	serve func()
	stop  func()
}

func svcIdentity(sa, cp string) string {
	return fmt.Sprintf("%s.%s.serviceaccount.identity.%s.%s", sa, cp, cp, trustDomain)
}

func startControlPlane(t *testing.T, c *kube.Cluster, n *netns.Network, lifetime time.Duration) *controlPlane {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cp := &controlPlane{ns: c.Namespace(t)}
	cp.idName, cp.dstName = svcIdentity("linkerd-identity", cp.ns), svcIdentity("linkerd-destination", cp.ns)
	now := time.Now()
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(now, 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := anchor.NewIssuer(certs.IssuerCommonName(trustDomain), certs.ValidFor(now, 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cp.anchorsPEM = string(certs.EncodeCertificatesPEM(anchor.Cert))
	keyPEM, _ := certs.EncodePrivateKeyPEM(iss.Key)
	cs := c.Client().CoreV1()
	if _, err := cs.ConfigMaps(cp.ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: issuer.DefaultTrustRootsMap},
		Data: map[string]string{issuer.TrustRootsKey: cp.anchorsPEM}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Secrets(cp.ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: issuer.DefaultSecretName},
		Data: map[string][]byte{"crt.pem": certs.EncodeCertificatesPEM(iss.Cert), "key.pem": keyPEM}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Serving certificates: in a cluster each component's own proxy terminates mesh TLS
	// with its workload identity; here the servers present those identities themselves.
	serverTLS := func(name string) credentials.TransportCredentials {
		key, err := certs.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := iss.IssueLeaf(key.Public(), name, certs.ValidFor(time.Now(), 24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{certs.TLSCertificate(key, leaf, iss.ChainFor()...)}, MinVersion: tls.VersionTLS12})
	}
	listen := func(port int) net.Listener {
		var ln net.Listener
		if err := n.Node.Do(func() (err error) {
			ln, err = net.Listen("tcp", fmt.Sprintf("%s:%d", netns.GatewayV4, port))
			return
		}); err != nil {
			t.Fatal(err)
		}
		return ln
	}
	quiet := testLogger()

	// Identity.
	store := &issuer.Store{}
	w := &issuer.Watcher{Client: c.Client(), Namespace: cp.ns, Store: store, Log: quiet}
	if err := w.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	idSvc := certify.New(certify.Options{Issuer: store, ControllerNS: cp.ns, TrustDomain: trustDomain, Log: quiet,
		Lifetime: lifetime, ClockSkew: time.Second,
		Reviewer: certify.NewTokenReviewer(c.Client(), certify.ReviewOptions{Audience: certify.TokenAudience})})
	idCreds := serverTLS(cp.idName)

	// Destination.
	idx, err := cluster.New(c.Client(), c.Dynamic())
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	opaque, _ := proxyconf.ParsePorts(proxyconf.DefaultOpaquePorts)
	dst, err := dstserver.New(idx, dstserver.Config{ControllerNamespace: cp.ns, ClusterDomain: "cluster.local", TrustDomain: trustDomain, DefaultOpaquePorts: opaque}, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	dstCreds := serverTLS(cp.dstName)

	// Policy.
	// One informer set for both policy indexes, as the policy controller has.
	pinf := k8s.NewInformers(c.Client(), c.Dynamic())
	pidx, err := inbound.NewIndex(pinf)
	if err != nil {
		t.Fatal(err)
	}
	if err := pidx.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	polSvc := inbound.New(pidx, inbound.Config{DefaultPolicy: inbound.AllUnauthenticated,
		ControllerNS: cp.ns, TrustDomain: trustDomain, DefaultOpaquePorts: opaque,
		ClusterNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, quiet)
	outIdx, err := outbound.NewIndex(pinf)
	if err != nil {
		t.Fatal(err)
	}
	if err := outIdx.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	outSvc := outbound.New(outIdx, outbound.Config{ClusterDomain: "cluster.local", DefaultOpaquePorts: opaque}, quiet)
	var running []*grpc.Server
	cp.serve = func() {
		idSrv := grpc.NewServer(grpc.Creds(idCreds))
		pbid.RegisterIdentityServer(idSrv, idSvc)
		dstSrv := grpc.NewServer(grpc.Creds(dstCreds))
		pbdst.RegisterDestinationServer(dstSrv, dst)
		polSrv := grpc.NewServer(grpc.Creds(dstCreds))
		pbin.RegisterInboundServerPoliciesServer(polSrv, polSvc)
		pbout.RegisterOutboundPoliciesServer(polSrv, outSvc)
		go idSrv.Serve(listen(8080))
		go dstSrv.Serve(listen(8086))
		go polSrv.Serve(listen(8090))
		running = []*grpc.Server{idSrv, dstSrv, polSrv}
	}
	cp.stop = func() {
		for _, s := range running {
			s.Stop()
		}
		running = nil
	}
	cp.serve()
	t.Cleanup(func() { cp.stop() })
	return cp
}
