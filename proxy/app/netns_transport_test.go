package app

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
	"github.com/l5d-go/l5d/test/netns"
)

// TestOpaqueTransportBetweenPods runs the proxy binary with identities in two pods with
// proxy-init's rules: an application's opaque connection to the server pod's port 7000
// leaves the client pod as mesh TLS to the server's inbound port 4143 with a transport
// header (redirected there to itself by the server pod's rules), and the server's proxy
// delivers it to port 7000 and sees the client's identity.
func TestOpaqueTransportBetweenPods(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	bin := buildProxy(t)
	n := netns.New(t)
	client, server := n.Pod(t, "client"), n.Pod(t, "server")

	env, dst := nodeControlPlane(t, n)

	// A server-speaks-first application on 7000: its greeting only arrives over a
	// connection the server's proxy delivered.
	ln, err := server.Listen("tcp", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.WriteString(c, "hello\n"); io.Copy(c, c); c.Close() }()
		}
	}()
	appAddr := netip.AddrPortFrom(server.IPv4, 7000)
	dst.SetProfile(appAddr.String(), &destination.DestinationProfile{FullyQualifiedName: "tcp.ns.svc.cluster.local.", OpaqueProtocol: true})
	dst.Set("tcp.ns.svc.cluster.local:7000", scriptedcp.Endpoint{Addr: appAddr, Identity: serverIdentity, OpaqueTransport: 4143})

	meshPod(t, server, bin, env(serverIdentity)...)
	meshPod(t, client, bin, env(clientIdentity)...)

	want := `tcp_open_total{direction="inbound",peer="src",target_addr="` + appAddr.String() + `",target_ip="` + server.IPv4.String() + `",tls="true",client_id="` + clientIdentity + `"}`
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The server's metrics tell when a connection came through the transport.
		c, err := client.Dial(t.Context(), "tcp", appAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		expectGreetingAndEcho(t, c)
		c.Close()
		if strings.Contains(podGet(t, podClient(server), "http://127.0.0.1:4191/metrics"), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's proxy never saw an opaque transport connection from %s:\n%s", clientIdentity,
				grepLines(podGet(t, podClient(server), "http://127.0.0.1:4191/metrics"), "tcp_open_total"))
		}
		time.Sleep(50 * time.Millisecond) // pacing between attempts, not synchronisation
	}
}

// nodeControlPlane starts scripted Identity and Destination services in n's node
// namespace, with TLS as the proxies expect, and returns the environment of a pod's
// proxy whose identity is local, and the Destination service.
func nodeControlPlane(t *testing.T, n *netns.Network) (env func(local string) []string, dst *scriptedcp.Destination) {
	t.Helper()
	// Identity and Destination in the node namespace, with TLS as the proxies expect.
	pki, err := scriptedcp.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	idTLS, err := pki.ServerTLS(idSvcName)
	if err != nil {
		t.Fatal(err)
	}
	dstTLS, err := pki.ServerTLS(dstSvcName)
	if err != nil {
		t.Fatal(err)
	}
	ids := &scriptedcp.Identity{PKI: pki, Token: "sa-token", Lifetime: time.Hour}
	dst = scriptedcp.NewDestination()
	var idAddr, dstAddr string
	if err := n.Node.Do(func() (err error) {
		if idAddr, err = ids.Start(netns.GatewayV4.String()+":8080", idTLS); err != nil {
			return err
		}
		dstAddr, err = dst.Start(netns.GatewayV4.String()+":8086", dstTLS)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ids.Stop)
	t.Cleanup(dst.Stop)
	// The proxies run as uid 2102: the token must be readable by them.
	dir, err := os.MkdirTemp("", "l5d-token-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("sa-token"), 0o644); err != nil {
		t.Fatal(err)
	}
	env = func(local string) []string {
		return []string{
			config.EnvIdentityAddr + "=" + idAddr,
			config.EnvIdentityName + "=" + idSvcName,
			config.EnvIdentityLocalName + "=" + local,
			config.EnvIdentityTrustAnchors + "=" + pki.AnchorsPEM(),
			config.EnvIdentityTokenFile + "=" + token,
			config.EnvDestinationAddr + "=" + dstAddr,
			config.EnvDestinationName + "=" + dstSvcName,
			config.EnvDestinationProfileNetworks + "=" + netns.PodNetworkV4.String(),
		}
	}

	return env, dst
}
