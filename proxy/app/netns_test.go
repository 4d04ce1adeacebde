package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/proxy-init/iptables"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
	"github.com/l5d-go/l5d/test/netns"
)

// buildProxy compiles cmd/proxy once per test binary.
func buildProxy(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "l5d-proxy-bin-")
	if err == nil {
		err = os.Chmod(dir, 0o755) // the proxy runs as uid 2102
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "proxy")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/l5d-go/l5d/proxy/cmd/proxy").CombinedOutput()
	if err != nil {
		t.Fatalf("building the proxy: %v\n%s", err, out)
	}
	return bin
}

// meshPod installs proxy-init's rules in p and starts the proxy binary in it as uid 2102.
func meshPod(t *testing.T, p *netns.Pod, bin string, extraEnv ...string) {
	t.Helper()
	meshPodLogged(t, p, bin, extraEnv...)
}

// meshPodLogged is meshPod returning what the proxy writes to its stderr.
func meshPodLogged(t *testing.T, p *netns.Pod, bin string, extraEnv ...string) *lockedBuffer {
	t.Helper()
	backends, err := iptables.ModeBackends(iptables.ModeNFT, true)
	if err != nil {
		t.Fatal(err)
	}
	cfg := iptables.DefaultConfig()
	cfg.InboundPortsToIgnore, _ = proxyconf.ParsePorts("4190,4191")
	if err := (&iptables.Installer{Config: cfg, Backends: backends, NetNS: p.Path()}).Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	cmd := netns.AsUser(exec.Command(bin), 2102, 2102)
	cmd.Env = []string{
		"LINKERD2_PROXY_LOG=warn",
		// Dual stack: "[::]" accepts both families; loopback needs one address per family.
		"LINKERD2_PROXY_INBOUND_LISTEN_ADDRS=[::]:4143",
		"LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS=127.0.0.1:4140,[::1]:4140",
		"LINKERD2_PROXY_ADMIN_LISTEN_ADDR=0.0.0.0:4191",
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	proc, err := p.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Kill()
		if t.Failed() {
			t.Logf("proxy in %s logged:\n%s", p.PodName, strings.Join(logs.lines(), "\n"))
		}
	})
	waitHTTP(t, p, "http://127.0.0.1:4191/ready")
	return logs
}

// podClient makes HTTP requests from inside pod p.
func podClient(p *netns.Pod) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.Dial(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
}

func waitHTTP(t *testing.T, p *netns.Pod, url string) {
	t.Helper()
	c := podClient(p)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s never answered 200: %v", url, p.PodName, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func podGet(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// TestTransparentProxyingBetweenPods runs the real proxy binary in two network-namespace
// pods with proxy-init's rules: an application in pod a calling pod b's address goes
// through a's outbound proxy and b's inbound proxy without knowing it, over IPv4 and IPv6.
func TestTransparentProxyingBetweenPods(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	bin := buildProxy(t)
	n := netns.New(t)
	a, b := n.Pod(t, "client"), n.Pod(t, "server")
	ln, err := b.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from b, you are %s", r.RemoteAddr)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	meshPod(t, a, bin)
	meshPod(t, b, bin)

	c := podClient(a)
	for _, dst := range []netip.Addr{b.IPv4, b.IPv6} {
		url := "http://" + netip.AddrPortFrom(dst, 8080).String() + "/"
		for range 3 {
			body := podGet(t, c, url)
			// The app sees its own inbound proxy on loopback, not pod a.
			if !strings.HasPrefix(body, "hello from b, you are 127.0.0.1:") {
				t.Fatalf("GET %s: %q (the request did not go through b's inbound proxy)", url, body)
			}
		}
	}
	out := podGet(t, podClient(a), "http://127.0.0.1:4191/metrics")
	in := podGet(t, podClient(b), "http://127.0.0.1:4191/metrics")
	for _, check := range []struct{ metrics, want string }{
		{out, `direction="outbound"`},
		{out, `target_addr="` + netip.AddrPortFrom(b.IPv4, 8080).String() + `"`},
		{in, `direction="inbound"`},
	} {
		if !strings.Contains(check.metrics, "request_total{") || !strings.Contains(check.metrics, check.want) {
			t.Errorf("metrics lack request_total with %s", check.want)
		}
	}
}

// TestMeshedTrafficBetweenPods runs the proxy binary in three pods with proxy-init's rules
// and a scripted Destination service in the node namespace: HTTP/1 balanced by discovery
// across two server pods (carried as HTTP/2 between the proxies), endpoint removal
// mid-traffic without failures, gRPC server streaming, and server-speaks-first TCP.
func TestMeshedTrafficBetweenPods(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	bin := buildProxy(t)
	n := netns.New(t)
	client, s1, s2 := n.Pod(t, "client"), n.Pod(t, "server-1"), n.Pod(t, "server-2")

	// The control plane lives in the node namespace, reachable from every pod.
	dst := scriptedcp.NewDestination()
	var cpAddr string
	if err := n.Node.Do(func() (err error) { cpAddr, err = dst.Start(netns.GatewayV4.String()+":8086", nil); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dst.Stop)

	const web, grpcName = "web.ns.svc.cluster.local:8080", "grpc.ns.svc.cluster.local:9090"
	hits := map[string]*atomic.Int64{}
	var healths []*health.Server
	for _, p := range []*netns.Pod{s1, s2} {
		count := new(atomic.Int64)
		hits[p.PodName] = count
		name := p.PodName
		ln, err := p.Listen("tcp", ":8080")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			count.Add(1)
			time.Sleep(10 * time.Millisecond) // service time, so that load shows in latency
			fmt.Fprintf(w, "%s %s", name, r.Proto)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		gln, err := p.Listen("tcp", ":9090")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer()
		hs := health.NewServer()
		hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(gs, hs)
		healths = append(healths, hs)
		go gs.Serve(gln)
		t.Cleanup(gs.Stop)
		tln, err := p.Listen("tcp", ":7000")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := tln.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, "banner from "+name+"\n")
				c.Close()
			}
		}()
		t.Cleanup(func() { tln.Close() })
	}
	ep := func(p *netns.Pod, port uint16) scriptedcp.Endpoint {
		return scriptedcp.Endpoint{Addr: netip.AddrPortFrom(p.IPv4, port), H2: true}
	}
	dst.Set(web, ep(s1, 8080), ep(s2, 8080))
	dst.Set(grpcName, ep(s1, 9090))

	env := []string{
		"LINKERD2_PROXY_IDENTITY_DISABLED=true",
		"LINKERD2_PROXY_DESTINATION_SVC_ADDR=" + cpAddr,
		"LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES=svc.cluster.local.",
		"LINKERD2_PROXY_OUTBOUND_DETECT_TIMEOUT=300ms",
		"LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION=7000",
	}
	for _, p := range []*netns.Pod{client, s1, s2} {
		meshPod(t, p, bin, env...)
	}

	// HTTP/1 by name: the client dials some address; the proxy routes by Host.
	c := podClient(client)
	get := func() (string, error) {
		req, _ := http.NewRequest("GET", "http://"+netip.AddrPortFrom(s1.IPv4, 8080).String()+"/", nil)
		req.Host = web
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return string(b), nil
	}
	// Concurrent requests: PeakEWMA's cost grows with requests in flight, so P2C moves
	// load to the second endpoint (a never-measured endpoint costs the 30ms default).
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for hits["server-1"].Load() == 0 || hits["server-2"].Load() == 0 {
				body, err := get()
				if err == nil && !strings.HasSuffix(body, "HTTP/1.1") {
					err = fmt.Errorf("app saw %q: HTTP/1 must be restored after the HTTP/2 hop", body)
				}
				if err == nil && time.Now().After(deadline) {
					err = fmt.Errorf("discovery did not spread requests: %d/%d", hits["server-1"].Load(), hits["server-2"].Load())
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Remove server-2 while requests flow: none fails, and server-2 stops receiving.
	dst.Set(web, ep(s1, 8080))
	for i := 0; i < 50; i++ {
		if _, err := get(); err != nil {
			t.Fatalf("request %d after endpoint removal: %v", i, err)
		}
	}
	before := hits["server-2"].Load()
	for i := 0; i < 20; i++ {
		if _, err := get(); err != nil {
			t.Fatal(err)
		}
	}
	if after := hits["server-2"].Load(); after != before {
		t.Fatalf("server-2 received %d requests after its removal", after-before)
	}

	// gRPC server streaming through both proxies.
	conn, err := grpc.NewClient("passthrough:///"+grpcName, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return client.Dial(ctx, "tcp", netip.AddrPortFrom(s1.IPv4, 9090).String())
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch update: %v %v", m, err)
	}
	healths[0].SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("second watch update: %v %v", m, err)
	}

	// Server-speaks-first TCP: the client sends nothing; the banner still arrives.
	tc, err := client.Dial(ctx, "tcp", netip.AddrPortFrom(s2.IPv4, 7000).String())
	if err != nil {
		t.Fatal(err)
	}
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	banner, err := io.ReadAll(tc)
	tc.Close()
	if err != nil || string(banner) != "banner from server-2\n" {
		t.Fatalf("server-speaks-first: %q %v", banner, err)
	}
}
