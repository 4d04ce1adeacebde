package app

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/meta"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

const otherIdentity = "other.ns.serviceaccount.identity.linkerd.cluster.local"

// startPolicyService serves pol as the policy controller and returns env entries that
// point a proxy at it.
func startPolicyService(t *testing.T, m *meshCP, pol inbound.InboundServerPoliciesServer) map[string]string {
	t.Helper()
	tlsCfg, err := m.pki.ServerTLS(policySvcName)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	inbound.RegisterInboundServerPoliciesServer(gs, pol)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	return map[string]string{
		config.EnvPolicyAddr:     ln.Addr().String(),
		config.EnvPolicyName:     policySvcName,
		config.EnvPolicyWorkload: `{"ns":"ns","pod":"web-0"}`,
	}
}

// unauthenticated admits everyone.
func unauthenticated() *inbound.Authz {
	return &inbound.Authz{Labels: map[string]string{"kind": "networkauthentication", "name": "anyone"},
		Networks:       []*inbound.Network{{Net: everywhereV4()}},
		Authentication: &inbound.Authn{Permit: &inbound.Authn_Unauthenticated{Unauthenticated: &inbound.Authn_PermitUnauthenticated{}}}}
}

// identityAuthz admits exactly the mesh identity id.
func identityAuthz(name, id string) *inbound.Authz {
	return &inbound.Authz{
		Labels:   map[string]string{"kind": "authorizationpolicy", "name": name},
		Networks: []*inbound.Network{{Net: everywhereV4()}},
		Authentication: &inbound.Authn{Permit: &inbound.Authn_MeshTLS{MeshTLS: &inbound.Authn_PermitMeshTLS{
			Clients: &inbound.Authn_PermitMeshTLS_Identities{Identities: &inbound.Authn_PermitMeshTLS_PermitClientIdentities{
				Identities: []*inbound.Identity{{Name: id}}}}}}},
	}
}

func routeMeta(kind, name string) *meta.Metadata {
	return &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{Group: "policy.linkerd.io", Kind: kind, Name: name}}}
}

// pathRoute is an HTTPRoute matching one path (prefix, or exact when exact is set).
func pathRoute(name, path string, exact bool, authz ...*inbound.Authz) *inbound.HttpRoute {
	pm := &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: path}}
	if exact {
		pm = &httproute.PathMatch{Kind: &httproute.PathMatch_Exact{Exact: path}}
	}
	return &inbound.HttpRoute{Metadata: routeMeta("HTTPRoute", name), Authorizations: authz,
		Rules: []*inbound.HttpRoute_Rule{{Matches: []*httproute.HttpRouteMatch{{Path: pm}}}}}
}

// TestInboundRouteAuthorization: a Server with HTTPRoutes admits each client only on the
// routes whose authorizations name it, answers 404 for requests no route matches, and
// lets unauthenticated probes in on the probe route.
func TestInboundRouteAuthorization(t *testing.T) {
	m := startMeshCP(t)
	pol := &scriptedPolicy{changed: make(chan struct{})}
	pol.srv = &inbound.Server{
		Labels: map[string]string{"group": "policy.linkerd.io", "kind": "server", "name": "web-http"},
		Protocol: &inbound.ProxyProtocol{Kind: &inbound.ProxyProtocol_Detect_{Detect: &inbound.ProxyProtocol_Detect{HttpRoutes: []*inbound.HttpRoute{
			pathRoute("client-route", "/client", false, identityAuthz("client-authz", clientIdentity)),
			pathRoute("other-route", "/other", false, identityAuthz("other-authz", otherIdentity)),
			pathRoute("probe", "/ready", true, &inbound.Authz{Labels: map[string]string{"kind": "default", "name": "probe"},
				Networks:       []*inbound.Network{{Net: everywhereV4()}},
				Authentication: &inbound.Authn{Permit: &inbound.Authn_Unauthenticated{Unauthenticated: &inbound.Authn_PermitUnauthenticated{}}}}),
			{Metadata: routeMeta("HTTPRoute", "canary"), Authorizations: []*inbound.Authz{unauthenticated()},
				Rules: []*inbound.HttpRoute_Rule{{Matches: []*httproute.HttpRouteMatch{{
					Path:        &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: "/canary"}},
					Headers:     []*httproute.HeaderMatch{{Name: "x-canary", Value: &httproute.HeaderMatch_Exact{Exact: []byte("yes")}}},
					QueryParams: []*httproute.QueryParamMatch{{Name: "v", Value: &httproute.QueryParamMatch_Regex{Regex: "[0-9]+"}}},
				}}}}},
		}}}},
	}
	env := m.env(serverIdentity)
	for k, v := range startPolicyService(t, m, pol) {
		env[k] = v
	}
	env[config.EnvInboundDefaultPolicy] = "deny"
	server := startProxy(t, netip.AddrPort{}, namedApp(t, "app"), env, nil)
	client := startProxy(t, unreachable, netip.AddrPort{}, m.env(clientIdentity), nil)
	other := startProxy(t, unreachable, netip.AddrPort{}, m.env(otherIdentity), nil)
	for _, p := range []*Proxy{server, client, other} {
		waitReady(t, p)
	}
	serverIn, _, _ := server.Addrs()
	m.dst.Set(svc, scriptedcp.Endpoint{Addr: serverIn, Identity: serverIdentity, H2: true})
	status := func(p *Proxy, path string, header ...string) int {
		t.Helper()
		c, url := clientTo(serverIn, false), "http://"+serverIn.String()+path
		if p != nil {
			_, out, _ := p.Addrs()
			c, url = clientTo(out, false), "http://"+svc+path
		}
		req, _ := http.NewRequest("GET", url, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually.True(t, "the routes to be in force", func() bool { return status(client, "/client/x") == http.StatusOK })
	for _, c := range []struct {
		who  string
		p    *Proxy
		path string
		want int
	}{
		{"client on its route", client, "/client/a", http.StatusOK},
		{"client on the other's route", client, "/other/a", http.StatusForbidden},
		{"other on its route", other, "/other", http.StatusOK},
		{"other on the client's route", other, "/client", http.StatusForbidden},
		{"client without a route", client, "/nowhere", http.StatusNotFound},
		{"unmeshed probe", nil, "/ready", http.StatusOK},
		{"unmeshed on a meshed route", nil, "/client", http.StatusForbidden},
		{"probe path is exact", nil, "/ready/x", http.StatusNotFound},
	} {
		if got := status(c.p, c.path); got != c.want {
			t.Errorf("%s (%s): %d, want %d", c.who, c.path, got, c.want)
		}
	}
	// Header and query matches, on the HTTP/1 fast path (unmeshed) and over HTTP/2
	// between proxies.
	for _, c := range []struct {
		who    string
		p      *Proxy
		path   string
		header string
		want   int
	}{
		{"unmeshed, header and query", nil, "/canary?v=12", "yes", http.StatusOK},
		{"unmeshed, no header", nil, "/canary?v=12", "", http.StatusNotFound},
		{"unmeshed, query mismatch", nil, "/canary?v=x", "yes", http.StatusNotFound},
		{"meshed, header and query", other, "/canary/a?v=1", "yes", http.StatusOK},
		{"meshed, header mismatch", other, "/canary/a?v=1", "no", http.StatusNotFound},
	} {
		var h []string
		if c.header != "" {
			h = []string{"X-Canary", c.header}
		}
		if got := status(c.p, c.path, h...); got != c.want {
			t.Errorf("%s (%s): %d, want %d", c.who, c.path, got, c.want)
		}
	}
	sm := scrape(t, server)
	// Decisions are counted with the target the client dialled (target_addr, target_ip,
	// target_port, as in Linkerd) and the Server, route and authorization.
	for _, want := range [][2]string{
		{"inbound_http_authz_allow_total{", `,srv_kind="server",srv_name="web-http",route_group="policy.linkerd.io",route_kind="httproute",route_name="client-route",authz_kind="authorizationpolicy",authz_name="client-authz"}`},
		{"inbound_http_authz_deny_total{", `,srv_kind="server",srv_name="web-http",route_group="policy.linkerd.io",route_kind="httproute",route_name="other-route"}`},
		{"inbound_http_authz_allow_total{", `,srv_kind="server",srv_name="web-http",route_group="policy.linkerd.io",route_kind="httproute",route_name="probe",authz_kind="default",authz_name="probe"}`},
	} {
		if !hasLine(sm, want[0], `{target_addr="127.0.0.1:`, `",target_ip="127.0.0.1",target_port="`, want[1]) {
			t.Errorf("metrics lack %s%s:\n%s", want[0], want[1], grepLines(sm, "authz"))
		}
	}
	// The inbound HTTP metrics carry the Server and route that took each request, and
	// the target port, as Linkerd's do (linkerd viz stat-inbound groups by them).
	if !hasLine(sm, "response_total{", `direction="inbound"`, `target_port="`, `srv_kind="server"`, `srv_name="web-http"`,
		`route_group="policy.linkerd.io"`, `route_kind="httproute"`, `route_name="client-route"`, `status_code="200"`) {
		t.Errorf("inbound response_total lacks the server and route labels:\n%s", grepLines(sm, "response_total{"))
	}
}

// TestInboundGRPCRouteDenied: a gRPC server's routes admit a client to one service and
// refuse it with PERMISSION_DENIED elsewhere.
func TestInboundGRPCRouteDenied(t *testing.T) {
	m := startMeshCP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gsrv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gsrv, hs)
	go gsrv.Serve(ln)
	t.Cleanup(gsrv.Stop)

	rpcRoute := func(name, method string, authz ...*inbound.Authz) *inbound.GrpcRoute {
		return &inbound.GrpcRoute{Metadata: routeMeta("GRPCRoute", name), Authorizations: authz,
			Rules: []*inbound.GrpcRoute_Rule{{Matches: []*grpcroute.GrpcRouteMatch{{Rpc: &grpcroute.GrpcRpcMatch{Service: "grpc.health.v1.Health", Method: method}}}}}}
	}
	pol := &scriptedPolicy{changed: make(chan struct{})}
	pol.srv = &inbound.Server{
		Labels: map[string]string{"kind": "server", "name": "web-grpc"},
		Protocol: &inbound.ProxyProtocol{Kind: &inbound.ProxyProtocol_Grpc_{Grpc: &inbound.ProxyProtocol_Grpc{Routes: []*inbound.GrpcRoute{
			rpcRoute("check", "Check", identityAuthz("client-authz", clientIdentity)),
			rpcRoute("watch", "Watch", identityAuthz("other-authz", otherIdentity)),
		}}}},
	}
	env := m.env(serverIdentity)
	for k, v := range startPolicyService(t, m, pol) {
		env[k] = v
	}
	env[config.EnvInboundDefaultPolicy] = "deny"
	server := startProxy(t, netip.AddrPort{}, ln.Addr().(*net.TCPAddr).AddrPort(), env, nil)
	client := startProxy(t, unreachable, netip.AddrPort{}, m.env(clientIdentity), nil)
	waitReady(t, server)
	waitReady(t, client)
	serverIn, _, _ := server.Addrs()
	m.dst.Set(svc, scriptedcp.Endpoint{Addr: serverIn, Identity: serverIdentity, H2: true})

	_, out, _ := client.Addrs()
	conn, err := grpc.NewClient("passthrough:///"+svc, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", out.String())
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eventually.True(t, "Check to be admitted", func() bool {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil
	})
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Watch on a route the client is not authorized for: %v, want PermissionDenied", err)
	}
	sm := scrape(t, server)
	if want := `,srv_kind="server",srv_name="web-grpc",route_group="policy.linkerd.io",route_kind="grpcroute",route_name="watch"}`; !hasLine(sm, "inbound_http_authz_deny_total{", want) {
		t.Errorf("metrics lack %s:\n%s", want, grepLines(sm, "authz"))
	}
}
