package app

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/inbound"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// scriptedPolicy serves InboundServerPolicies.WatchPort with one scripted answer for
// every port, pushed to open watches when it changes.
type scriptedPolicy struct {
	inbound.UnimplementedInboundServerPoliciesServer
	mu      sync.Mutex
	srv     *inbound.Server
	changed chan struct{}
}

func (s *scriptedPolicy) set(srv *inbound.Server) {
	s.mu.Lock()
	s.srv = srv
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *scriptedPolicy) WatchPort(_ *inbound.PortSpec, stream grpc.ServerStreamingServer[inbound.Server]) error {
	for {
		s.mu.Lock()
		srv, ch := s.srv, s.changed
		s.mu.Unlock()
		if err := stream.Send(srv); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-stream.Context().Done():
			return nil
		}
	}
}

const policySvcName = "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local"

// everywhereV4 is 0.0.0.0/0 (the test clients connect over IPv4 loopback).
func everywhereV4() *pbnet.IPNetwork {
	return &pbnet.IPNetwork{Ip: &pbnet.IPAddress{Ip: &pbnet.IPAddress_Ipv4{Ipv4: 0}}, PrefixLen: 0}
}

func TestInboundPolicyEnforcement(t *testing.T) {
	m := startMeshCP(t)
	const (
		clientName = "client.ns.serviceaccount.identity.linkerd.cluster.local"
		otherName  = "other.ns.serviceaccount.identity.linkerd.cluster.local"
		serverName = "web.ns.serviceaccount.identity.linkerd.cluster.local"
	)
	pol := &scriptedPolicy{changed: make(chan struct{})}
	pol.srv = &inbound.Server{Labels: map[string]string{"kind": "default", "name": "all-authenticated"}}
	tlsCfg, err := m.pki.ServerTLS(policySvcName)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	inbound.RegisterInboundServerPoliciesServer(gs, pol)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)

	appAddr := namedApp(t, "app")
	env := m.env(serverName)
	env[config.EnvPolicyAddr] = ln.Addr().String()
	env[config.EnvPolicyName] = policySvcName
	env[config.EnvPolicyWorkload] = `{"ns":"ns","pod":"web-0"}`
	env[config.EnvInboundDefaultPolicy] = "all-authenticated"
	server := startProxy(t, netip.AddrPort{}, appAddr, env, nil)
	client := startProxy(t, unreachable, netip.AddrPort{}, m.env(clientName), nil)
	other := startProxy(t, unreachable, netip.AddrPort{}, m.env(otherName), nil)
	for _, p := range []*Proxy{server, client, other} {
		waitReady(t, p)
	}
	// The admin server shows the certificate (never the key).
	_, _, serverAdmin := server.Addrs()
	resp, err := http.Get("http://" + serverAdmin.String() + "/identity/certificate")
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if chain, err := certs.ParseCertificatesPEM(pemBytes); err != nil || len(chain) == 0 || len(chain[0].DNSNames) != 1 || chain[0].DNSNames[0] != serverName || strings.Contains(string(pemBytes), "PRIVATE") {
		t.Fatalf("admin /identity/certificate: %v %q", err, pemBytes)
	}
	serverIn, _, _ := server.Addrs()
	m.dst.Set(svc, scriptedcp.Endpoint{Addr: serverIn, Identity: serverName, H2: true})
	status := func(p *Proxy) int {
		var c *http.Client
		url := "http://" + svc + "/"
		if p == nil { // an unmeshed client straight to the server's inbound port
			c, url = clientTo(serverIn, false), "http://"+serverIn.String()+"/"
		} else {
			_, out, _ := p.Addrs()
			c = clientTo(out, false)
		}
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The controller answers an empty Server: nobody is authorized.
	eventually.True(t, "the controller's empty policy", func() bool { return status(client) == http.StatusForbidden })
	if got := status(nil); got != http.StatusForbidden {
		t.Fatalf("unmeshed client: %d, want 403", got)
	}
	// A MeshTLSAuthentication naming only the client's ServiceAccount.
	pol.set(&inbound.Server{
		Labels: map[string]string{"kind": "server", "name": "web-http"},
		Authorizations: []*inbound.Authz{{
			Labels:   map[string]string{"kind": "authorizationpolicy", "name": "web-authz"},
			Networks: []*inbound.Network{{Net: everywhereV4()}},
			Authentication: &inbound.Authn{Permit: &inbound.Authn_MeshTLS{MeshTLS: &inbound.Authn_PermitMeshTLS{
				Clients: &inbound.Authn_PermitMeshTLS_Identities{Identities: &inbound.Authn_PermitMeshTLS_PermitClientIdentities{
					Identities: []*inbound.Identity{{Name: clientName}}}}}}},
		}},
	})
	eventually.True(t, "the client to be authorized", func() bool { return status(client) == http.StatusOK })
	if got := status(other); got != http.StatusForbidden {
		t.Fatalf("another ServiceAccount: %d, want 403", got)
	}
	if got := status(nil); got != http.StatusForbidden {
		t.Fatalf("unmeshed client: %d, want 403", got)
	}
	sm := scrape(t, server)
	if !hasLine(sm, "inbound_http_authz_allow_total{", `,srv_kind="server",srv_name="web-http",route_group="",route_kind="default",route_name="default",authz_kind="authorizationpolicy",authz_name="web-authz"}`) ||
		!hasLine(sm, "inbound_http_authz_deny_total{", `,srv_kind="server",srv_name="web-http",route_group="",route_kind="default",route_name="default"}`) {
		t.Fatalf("authorization metrics missing:\n%s", grepLines(sm, "authz"))
	}
	// The refusals are counted under the client's identity (or as plaintext).
	if !hasLine(sm, "response_total{", `direction="inbound"`, `tls="true"`, `client_id="`+otherName+`"`, `status_code="403"`) ||
		!hasLine(sm, "response_total{", `direction="inbound"`, `tls="no_identity"`, `status_code="403"`) {
		t.Fatalf("inbound 403 responses not counted by client:\n%s", grepLines(sm, "response_total"))
	}
	// Unauthenticated from anywhere: everyone in.
	pol.set(&inbound.Server{Labels: map[string]string{"kind": "default", "name": "all-unauthenticated"},
		Authorizations: []*inbound.Authz{{Labels: map[string]string{"name": "all-unauthenticated"}, Networks: []*inbound.Network{{Net: everywhereV4()}},
			Authentication: &inbound.Authn{Permit: &inbound.Authn_Unauthenticated{Unauthenticated: &inbound.Authn_PermitUnauthenticated{}}}}}})
	eventually.True(t, "unmeshed clients to be allowed", func() bool { return status(nil) == http.StatusOK })
}

// hasLine reports whether a line of text starts with prefix and contains every part.
func hasLine(text, prefix string, parts ...string) bool {
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}
