package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

const svc = "web.ns.svc.cluster.local:80"

// namedApp answers every request with its name.
func namedApp(t testing.TB, name string) netip.AddrPort { return slowApp(t, name, 0) }

// slowApp answers every request with its name after delay. A delay makes concurrent
// requests load an endpoint, so P2C also tries endpoints it has not measured yet (they
// start at the 30ms default estimate, above any loopback latency).
func slowApp(t testing.TB, name string, delay time.Duration) netip.AddrPort {
	t.Helper()
	addr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if delay > 0 {
			time.Sleep(delay)
		}
		io.WriteString(w, name)
	}))
	return addr
}

// unreachable is an original destination nothing listens on: a request that reaches it
// instead of a discovered endpoint fails.
var unreachable = netip.MustParseAddrPort("127.0.0.1:1")

func startDestination(t *testing.T) (*scriptedcp.Destination, string) {
	t.Helper()
	d := scriptedcp.NewDestination()
	addr, err := d.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d, addr
}

func fetch(c *http.Client, url string) (string, error) { return fetchAs(c, url, "") }

func TestDiscoveryBalancesAcrossEndpoints(t *testing.T) {
	d, cp := startDestination(t)
	var eps []scriptedcp.Endpoint
	for i := range 3 {
		// Each answer takes a while, so concurrent requests load every endpoint and P2C
		// spreads them (an endpoint never tried starts at the 30ms default estimate).
		name := fmt.Sprint("app-", i)
		addr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(20 * time.Millisecond)
			io.WriteString(w, name)
		}))
		eps = append(eps, scriptedcp.Endpoint{Addr: addr, Labels: map[string]string{"pod": fmt.Sprint("web-", i)}})
	}
	d.Set(svc, eps...)
	p := startProxy(t, unreachable, netip.AddrPort{}, map[string]string{config.EnvDestinationAddr: cp}, nil)
	_, out, _ := p.Addrs()
	tr := startTraffic(clientTo(out, false), "http://"+svc+"/", 8)
	eventually.True(t, "requests on every endpoint", func() bool {
		return tr.count("app-0") > 5 && tr.count("app-1") > 5 && tr.count("app-2") > 5
	})
	tr.finish(t)
	m := scrape(t, p)
	for _, want := range []string{`authority="` + svc + `"`, `dst_pod="web-1"`, `dst_service="scripted"`,
		`tls="no_identity",no_tls_reason="not_provided_by_service_discovery"`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// A name the control plane does not know goes to its original destination.
	other := namedApp(t, "direct")
	p2 := startProxy(t, other, netip.AddrPort{}, map[string]string{config.EnvDestinationAddr: cp}, nil)
	_, out2, _ := p2.Addrs()
	if body, err := fetch(clientTo(out2, false), "http://unknown.ns.svc.cluster.local/"); err != nil || body != "direct" {
		t.Fatalf("unknown service: %q %v", body, err)
	}
}

// traffic sends requests from several clients until stopped, counting answers per body
// and failures.
type traffic struct {
	mu       sync.Mutex
	seen     map[string]int
	failures atomic.Int64
	firstErr atomic.Value
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startTraffic(c *http.Client, url string, workers int) *traffic {
	tr := &traffic{seen: map[string]int{}, stop: make(chan struct{})}
	for range workers {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for {
				select {
				case <-tr.stop:
					return
				default:
				}
				body, err := fetch(c, url)
				if err != nil {
					tr.failures.Add(1)
					tr.firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				tr.mu.Lock()
				tr.seen[body]++
				tr.mu.Unlock()
			}
		}()
	}
	return tr
}

func (tr *traffic) count(body string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.seen[body]
}

func (tr *traffic) finish(t *testing.T) {
	t.Helper()
	close(tr.stop)
	tr.wg.Wait()
	if n := tr.failures.Load(); n > 0 {
		t.Errorf("%d requests failed; first: %v", n, tr.firstErr.Load())
	}
}

func TestEndpointChurnAndControlPlaneOutage(t *testing.T) {
	d, cp := startDestination(t)
	a := scriptedcp.Endpoint{Addr: slowApp(t, "a", 20*time.Millisecond)}
	b := scriptedcp.Endpoint{Addr: slowApp(t, "b", 20*time.Millisecond)}
	c := scriptedcp.Endpoint{Addr: slowApp(t, "c", 20*time.Millisecond)}
	d.Set(svc, a)
	p := startProxy(t, unreachable, netip.AddrPort{}, map[string]string{config.EnvDestinationAddr: cp}, nil)
	_, out, _ := p.Addrs()
	tr := startTraffic(clientTo(out, false), "http://"+svc+"/", 6)
	defer tr.finish(t)

	eventually.True(t, "traffic to a", func() bool { return tr.count("a") > 20 })
	d.Set(svc, a, b) // added mid-traffic
	eventually.True(t, "traffic to b", func() bool { return tr.count("b") > 20 })
	d.Set(svc, b) // a removed mid-traffic
	eventually.True(t, "a to be drained", func() bool {
		n := tr.count("a")
		before := tr.count("b")
		eventually.True(t, "more traffic", func() bool { return tr.count("b") > before+20 })
		return tr.count("a") == n
	})

	// The control plane dies: the last endpoints keep serving. The name's two streams
	// (Get and GetProfile) are stale.
	d.Stop()
	eventually.True(t, "the stale metric", func() bool {
		return strings.Contains(scrape(t, p), "control_plane_stale_streams 2\n")
	})
	before := tr.count("b")
	eventually.True(t, "traffic during the outage", func() bool { return tr.count("b") > before+50 })

	// It comes back with a new endpoint set; traffic follows.
	d.Set(svc, c)
	if _, err := d.Start(cp, nil); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "traffic to c after recovery", func() bool { return tr.count("c") > 20 })
	eventually.True(t, "the stale metric to clear", func() bool {
		return strings.Contains(scrape(t, p), "control_plane_stale_streams 0\n")
	})
}

type meshCP struct {
	pki             *scriptedcp.PKI
	dst             *scriptedcp.Destination
	ids             *scriptedcp.Identity
	idAddr, dstAddr string
	idTLS, dstTLS   *tls.Config
	tokenFile       string
}

const (
	idSvcName  = "identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
	dstSvcName = "destination.linkerd.serviceaccount.identity.linkerd.cluster.local"
)

func startMeshCP(t testing.TB) *meshCP { return startMeshCPWith(t, time.Hour) }

// startMeshCPWith starts identity and destination services issuing certificates valid
// for lifetime.
func startMeshCPWith(t testing.TB, lifetime time.Duration) *meshCP {
	t.Helper()
	pki, err := scriptedcp.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	m := &meshCP{pki: pki, dst: scriptedcp.NewDestination()}
	if m.idTLS, err = pki.ServerTLS(idSvcName); err != nil {
		t.Fatal(err)
	}
	m.ids = &scriptedcp.Identity{PKI: pki, Token: "sa-token", Lifetime: lifetime}
	if m.idAddr, err = m.ids.Start("127.0.0.1:0", m.idTLS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.ids.Stop)
	if m.dstTLS, err = pki.ServerTLS(dstSvcName); err != nil {
		t.Fatal(err)
	}
	if m.dstAddr, err = m.dst.Start("127.0.0.1:0", m.dstTLS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.dst.Stop)
	m.tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(m.tokenFile, []byte("sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *meshCP) env(local string) map[string]string {
	return map[string]string{
		config.EnvIdentityAddr:         m.idAddr,
		config.EnvIdentityName:         idSvcName,
		config.EnvIdentityLocalName:    local,
		config.EnvIdentityTrustAnchors: m.pki.AnchorsPEM(),
		config.EnvIdentityTokenFile:    m.tokenFile,
		config.EnvDestinationAddr:      m.dstAddr,
		config.EnvDestinationName:      dstSvcName,
	}
}

func waitReady(t testing.TB, p *Proxy) {
	t.Helper()
	_, _, admin := p.Addrs()
	eventually.True(t, "the proxy to be ready", func() bool {
		resp, err := http.Get("http://" + admin.String() + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func TestMutualTLSBetweenProxies(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprint("h2=", h2), func(t *testing.T) {
			m := startMeshCP(t)
			const (
				clientName = "client.ns.serviceaccount.identity.linkerd.cluster.local"
				serverName = "web.ns.serviceaccount.identity.linkerd.cluster.local"
			)
			appAddr := namedApp(t, "app")
			server := startProxy(t, netip.AddrPort{}, appAddr, m.env(serverName), nil)
			client := startProxy(t, unreachable, netip.AddrPort{}, m.env(clientName), nil)
			waitReady(t, server)
			waitReady(t, client)
			serverIn, _, _ := server.Addrs()
			m.dst.Set(svc, scriptedcp.Endpoint{Addr: serverIn, Identity: serverName, H2: h2})
			_, out, _ := client.Addrs()
			c := clientTo(out, false)
			for range 5 {
				if body, err := fetch(c, "http://"+svc+"/"); err != nil || body != "app" {
					t.Fatalf("through mTLS: %q %v", body, err)
				}
			}
			sm := scrape(t, server)
			if !strings.Contains(sm, `request_total{direction="inbound",authority="`+svc+`"`) ||
				!strings.Contains(sm, `tls="true",client_id="`+clientName+`"} 5`) {
				t.Errorf("server metrics do not show the client identity:\n%s", grepLines(sm, "request_total"))
			}
			cm := scrape(t, client)
			if !strings.Contains(cm, `tls="true",server_id="`+serverName+`"} 5`) {
				t.Errorf("client metrics do not show the server identity:\n%s", grepLines(cm, "request_total"))
			}
			if !strings.Contains(cm, "identity_cert_refresh_count 1\n") {
				t.Error("identity_cert_refresh_count not exported")
			}
		})
	}
}

func TestWrongServerIdentityIsRefused(t *testing.T) {
	m := startMeshCP(t)
	appAddr := namedApp(t, "app")
	server := startProxy(t, netip.AddrPort{}, appAddr, m.env("web.ns.serviceaccount.identity.linkerd.cluster.local"), nil)
	client := startProxy(t, unreachable, netip.AddrPort{}, m.env("client.ns.serviceaccount.identity.linkerd.cluster.local"), nil)
	waitReady(t, server)
	waitReady(t, client)
	serverIn, _, _ := server.Addrs()
	// Discovery says the endpoint is another workload than the one listening there.
	m.dst.Set(svc, scriptedcp.Endpoint{Addr: serverIn, Identity: "db.ns.serviceaccount.identity.linkerd.cluster.local"})
	_, out, _ := client.Addrs()
	resp, err := clientTo(out, false).Get("http://" + svc + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502 for an endpoint with the wrong identity", resp.StatusCode)
	}
	if strings.Contains(scrape(t, server), `direction="inbound",authority="`) {
		t.Error("the request reached the server's application")
	}
}

func TestNotReadyWithoutCertificate(t *testing.T) {
	m := startMeshCP(t)
	if err := os.WriteFile(m.tokenFile, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, unreachable, netip.AddrPort{}, m.env("web.ns.serviceaccount.identity.linkerd.cluster.local"), nil)
	_, _, admin := p.Addrs()
	for range 3 {
		resp, err := http.Get("http://" + admin.String() + "/ready")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("ready without an identity certificate")
		}
	}
	if err := os.WriteFile(m.tokenFile, []byte("sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitReady(t, p)
}

func TestIdentityConfigErrorsNameTheVariable(t *testing.T) {
	m := startMeshCP(t)
	env := m.env("web.ns.serviceaccount.identity.linkerd.cluster.local")
	env[config.EnvIdentityTrustAnchors] = "not a certificate"
	env[config.EnvAdminListenAddr] = "127.0.0.1:0"
	env[config.EnvInboundListenAddr] = "127.0.0.1:0"
	env[config.EnvOutboundListenAddr] = "127.0.0.1:0"
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), cfg, Options{Log: testLog()})
	if err == nil || !strings.Contains(err.Error(), config.EnvIdentityTrustAnchors) {
		t.Fatalf("error %v does not name %s", err, config.EnvIdentityTrustAnchors)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// meshPair is a client proxy and a server proxy (in front of app) with identities, and
// discovery pointing svc at the server's inbound listener.
func meshPair(t testing.TB, m *meshCP, app netip.AddrPort, env map[string]string) (client, server *Proxy) {
	t.Helper()
	withEnv := func(local string) map[string]string {
		e := m.env(local)
		for k, v := range env {
			e[k] = v
		}
		return e
	}
	server = startProxy(t, netip.AddrPort{}, app, withEnv(serverIdentity), nil)
	client = startProxy(t, unreachable, netip.AddrPort{}, withEnv(clientIdentity), nil)
	waitReady(t, server)
	waitReady(t, client)
	serverIn, _, _ := server.Addrs()
	m.dst.Set(svc, scriptedcp.Endpoint{Addr: serverIn, Identity: serverIdentity, H2: true})
	return client, server
}

const (
	clientIdentity = "client.ns.serviceaccount.identity.linkerd.cluster.local"
	serverIdentity = "web.ns.serviceaccount.identity.linkerd.cluster.local"
)

func refreshes(t *testing.T, p *Proxy) int {
	m := scrape(t, p)
	i := strings.Index(m, "\nidentity_cert_refresh_count ")
	if i < 0 {
		return 0
	}
	var n int
	fmt.Sscan(m[i+len("\nidentity_cert_refresh_count "):], &n)
	return n
}

func TestCertificateRenewalMidTraffic(t *testing.T) {
	// Certificates live about three seconds, so each proxy renews every two or so.
	m := startMeshCPWith(t, 2*time.Second)
	client, server := meshPair(t, m, namedApp(t, "app"), nil)
	_, out, _ := client.Addrs()
	// New connections keep being made (no keep-alive), so handshakes use renewed certificates.
	c := clientTo(out, false)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	tr := startTraffic(c, "http://"+svc+"/", 2)
	eventually.True(t, "two renewals on both sides", func() bool { return refreshes(t, client) >= 3 && refreshes(t, server) >= 3 })
	before := tr.count("app")
	eventually.True(t, "traffic after the renewals", func() bool { return tr.count("app") > before+10 })
	tr.finish(t)
}

func TestMeshSurvivesControlPlaneOutage(t *testing.T) {
	m := startMeshCP(t)
	client, _ := meshPair(t, m, namedApp(t, "app"), nil)
	_, out, _ := client.Addrs()
	tr := startTraffic(clientTo(out, false), "http://"+svc+"/", 4)
	defer tr.finish(t)
	eventually.True(t, "traffic", func() bool { return tr.count("app") > 20 })
	m.dst.Stop()
	m.ids.Stop()
	// The name's Get and GetProfile streams serve their last state.
	eventually.True(t, "the stale metric", func() bool { return strings.Contains(scrape(t, client), "control_plane_stale_streams 2\n") })
	before := tr.count("app")
	eventually.True(t, "traffic during the outage", func() bool { return tr.count("app") > before+50 })
	if _, err := m.dst.Start(m.dstAddr, m.dstTLS); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ids.Start(m.idAddr, m.idTLS); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "recovery", func() bool { return strings.Contains(scrape(t, client), "control_plane_stale_streams 0\n") })
}

func TestOpaqueOverMutualTLSThroughProfile(t *testing.T) {
	m := startMeshCP(t)
	// A server-speaks-first application: it greets, then echoes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.WriteString(c, "hello\n"); io.Copy(c, c); c.Close() }()
		}
	}()
	app := ln.Addr().(*net.TCPAddr).AddrPort()
	// The client's original destination is a "ClusterIP" (here: an unreachable loopback
	// address) whose profile names the service and marks it opaque, so the outbound proxy
	// skips detection (which would wait 20s for the client to speak); the server side
	// has the port configured opaque.
	client, server := meshPair(t, m, app, map[string]string{
		config.EnvDestinationProfileNetworks: "127.0.0.0/8",
		config.EnvOutboundDetectTimeout:      "20s",
		config.EnvInboundDisableDetection:    fmt.Sprint(app.Port()),
	})
	m.dst.SetProfile(unreachable.String(), &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local.", OpaqueProtocol: true})
	serverIn, _, _ := server.Addrs()
	m.dst.Set("web.ns.svc.cluster.local:1", scriptedcp.Endpoint{Addr: serverIn, Identity: serverIdentity})
	_, out, _ := client.Addrs()
	c, err := net.Dial("tcp", out.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	greeting := make([]byte, len("hello\n"))
	if _, err := io.ReadFull(c, greeting); err != nil || string(greeting) != "hello\n" {
		t.Fatalf("greeting %q %v", greeting, err)
	}
	if _, err := c.Write([]byte("ping over mtls\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("ping over mtls\n"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping over mtls\n" {
		t.Fatalf("echo %q %v", buf, err)
	}
	c.Close()
	eventually.True(t, "server-side TCP metrics with the client identity", func() bool {
		return strings.Contains(scrape(t, server), `tcp_open_total{direction="inbound",peer="src",target_addr="`+app.String()+`",target_ip="127.0.0.1",tls="true",client_id="`+clientIdentity+`"} 1`)
	})
}

func TestLoopbackNameDropsTheRootDot(t *testing.T) {
	for in, want := range map[string]string{
		"localhost.:8080": "localhost:8080",
		"LOCALHOST.:8080": "localhost:8080",
		"localhost:8080":  "localhost:8080",
		"linkerd-identity-headless.linkerd.svc.cluster.local.:8080": "linkerd-identity-headless.linkerd.svc.cluster.local.:8080",
		"[::1]:8080": "[::1]:8080",
		"no-port":    "no-port",
	} {
		if got := loopbackName(in); got != want {
			t.Errorf("loopbackName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLocalhostControlAddressesArePlaintext(t *testing.T) {
	for addr, want := range map[string]bool{
		"localhost.:8080": true, "localhost:8080": true, "LocalHost.:8080": true,
		"127.0.0.1:8080": false, "linkerd-identity-headless.linkerd.svc.cluster.local.:8080": false, "bad": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestOwnPodControllerOverLocalhost: the destination pod's proxy, given
// LINKERD2_PROXY_DESTINATION_SVC_ADDR=localhost.:8086 and
// LINKERD2_PROXY_POLICY_SVC_ADDR=localhost.:8090 as the chart gives it, reaches the
// controllers beside it in plaintext while it has a mesh identity (they serve no TLS
// behind their proxy): its application's requests are discovered through the one and
// routed by the other's policy, and sent over mesh TLS to a meshed endpoint.
func TestOwnPodControllerOverLocalhost(t *testing.T) {
	m := startMeshCP(t)
	local := scriptedcp.NewDestination()
	localAddr, err := local.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(local.Stop)
	op := scriptedcp.NewOutboundPolicies()
	opAddr, err := op.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Stop)
	localhost := func(addr string) string { _, port, _ := net.SplitHostPort(addr); return "localhost.:" + port }
	server := startProxy(t, netip.AddrPort{}, namedApp(t, "app"), m.env(serverIdentity), nil)
	env := m.env(clientIdentity)
	env[config.EnvDestinationAddr] = localhost(localAddr)
	env[config.EnvPolicyAddr] = localhost(opAddr)
	env[config.EnvPolicyName] = dstSvcName
	env[config.EnvPolicyWorkload] = `{"ns":"ns","pod":"client-0"}`
	client := startProxy(t, unreachable, netip.AddrPort{}, env, nil)
	waitReady(t, server)
	waitReady(t, client)
	serverIn, _, _ := server.Addrs()
	local.Set(svc, scriptedcp.Endpoint{Addr: serverIn, Identity: serverIdentity})
	local.Set(svcV2, scriptedcp.Endpoint{Addr: namedApp(t, "v2")})
	_, out, _ := client.Addrs()
	c := clientTo(out, false)
	if body, err := fetch(c, "http://"+svc+"/"); err != nil || body != "app" {
		t.Fatalf("through the plaintext local destination controller: %q %v", body, err)
	}
	if m := scrape(t, server); !strings.Contains(m, `tls="true",client_id="`+clientIdentity+`"`) {
		t.Errorf("the server proxy did not see the client's identity:\n%s", grepLines(m, "request_total"))
	}
	op.Set(svc, httpRoutePolicy(routeRule("/", 0, nil, weighted{svc, 0}, weighted{svcV2, 100})))
	eventually.True(t, "the local policy controller's split to apply", func() bool {
		b, _ := fetch(c, "http://"+svc+"/")
		return b == "v2"
	})
}
