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
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy-init/iptables"
	"github.com/l5d-go/l5d/proxy-init/ports"
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
func meshPod(t *testing.T, p *netns.Pod, bin string) {
	t.Helper()
	backends, err := iptables.ModeBackends(iptables.ModeNFT, true)
	if err != nil {
		t.Fatal(err)
	}
	cfg := iptables.DefaultConfig()
	cfg.InboundPortsToIgnore, _ = ports.Parse("4190,4191")
	if err := (&iptables.Installer{Config: cfg, Backends: backends, NetNS: p.Path()}).Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	cmd := netns.AsUser(exec.Command(bin), 2102, 2102)
	cmd.Env = []string{
		"LINKERD2_PROXY_LOG=warn",
		"LINKERD2_PROXY_INBOUND_LISTEN_ADDR=0.0.0.0:4143",
		"LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR=127.0.0.1:4140",
		"LINKERD2_PROXY_ADMIN_LISTEN_ADDR=0.0.0.0:4191",
	}
	var logs strings.Builder
	cmd.Stderr = &logs
	proc, err := p.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Kill()
		if t.Failed() {
			t.Logf("proxy in %s logged:\n%s", p.PodName, logs.String())
		}
	})
	waitHTTP(t, p, "http://127.0.0.1:4191/ready")
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
// through a's outbound proxy and b's inbound proxy without knowing it, over IPv4.
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
	// IPv4 only: the proxy listens on one address per direction (Linkerd's IPv4 defaults);
	// dual-stack listeners are not built yet.
	for _, dst := range []netip.Addr{b.IPv4} {
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
