package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/outbound"
)

// testLog is quiet unless L5D_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("L5D_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startProxy starts a proxy on loopback ports with env overrides; outFallback and
// inFallback are the original destinations of its outbound and inbound connections.
func startProxy(t testing.TB, outFallback, inFallback netip.AddrPort, env map[string]string, disc outbound.Discovery) *Proxy {
	t.Helper()
	return startProxyWith(t, outFallback, inFallback, env, Options{Discovery: disc})
}

// startProxyWith is startProxy with opts (its Log and Level are the tests').
func startProxyWith(t testing.TB, outFallback, inFallback netip.AddrPort, env map[string]string, opts Options) *Proxy {
	t.Helper()
	m := map[string]string{
		config.EnvAdminListenAddr:    "127.0.0.1:0",
		config.EnvInboundListenAddr:  "127.0.0.1:0",
		config.EnvOutboundListenAddr: "127.0.0.1:0",
	}
	if outFallback.IsValid() {
		m[config.EnvOutboundFallbackDst] = outFallback.String()
	}
	if inFallback.IsValid() {
		m[config.EnvInboundFallbackDst] = inFallback.String()
	}
	for k, v := range env {
		m[k] = v
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	opts.Log, opts.Level = testLog(), new(slog.LevelVar)
	p, err := Start(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Shutdown(); err != nil {
			t.Errorf("proxy shutdown: %v", err)
		}
	})
	return p
}

// chain is client -> outbound proxy -> inbound proxy -> app.
type chain struct {
	out, in *Proxy
	// entry is where the client connects: the outbound proxy's listener.
	entry netip.AddrPort
}

// newChain builds the two-proxy chain to app; env applies to both proxies.
func newChain(t testing.TB, app netip.AddrPort, env map[string]string) *chain {
	t.Helper()
	in := startProxy(t, netip.AddrPort{}, app, env, nil)
	inAddr, _, _ := in.Addrs()
	out := startProxy(t, inAddr, netip.AddrPort{}, env, nil)
	_, outAddr, _ := out.Addrs()
	return &chain{out: out, in: in, entry: outAddr}
}

// serveHTTP starts an HTTP/1 + h2c server on loopback and returns its address.
func serveHTTP(t testing.TB, h http.Handler) (netip.AddrPort, *http.Server) {
	t.Helper()
	return serveHTTPWith(t, h, nil)
}

// serveHTTPWith is serveHTTP with configure, when set, applied to the server before it
// serves (changing it afterwards races with its connections).
func serveHTTPWith(t testing.TB, h http.Handler, configure func(*http.Server)) (netip.AddrPort, *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	if configure != nil {
		configure(srv)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).AddrPort(), srv
}

// clientTo returns an HTTP client whose every connection goes to addr, as iptables would
// redirect it; URLs keep their own host names.
func clientTo(addr netip.AddrPort, h2 bool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr.String())
		},
		DisableCompression: true,
	}
	tr.Protocols = new(http.Protocols)
	if h2 {
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func get(t testing.TB, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, c, req)
}

// do sends req with c and returns the response and its whole body.
func do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func scrape(t testing.TB, p *Proxy) string {
	t.Helper()
	var sb strings.Builder
	if _, err := p.Metrics.WriteTo(&sb); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}
