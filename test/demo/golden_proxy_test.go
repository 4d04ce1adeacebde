package demo_test

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/l5d-go/l5d/cli/goldenmetrics"
	"github.com/l5d-go/l5d/test/demo/demotest"
	"github.com/l5d-go/l5d/test/demo/ratings"
)

var (
	proxyOnce sync.Once
	proxyBin  string
	proxyErr  error
)

// buildProxy builds the l5d proxy command once per test binary.
func buildProxy(t *testing.T) string {
	t.Helper()
	proxyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "golden-proxy-")
		if err != nil {
			proxyErr = err
			return
		}
		proxyBin = filepath.Join(dir, "proxy")
		if out, err := exec.Command("go", "build", "-o", proxyBin, "github.com/l5d-go/l5d/proxy/cmd/proxy").CombinedOutput(); err != nil {
			proxyErr = fmt.Errorf("building the proxy: %v\n%s", err, out)
		}
	})
	if proxyErr != nil {
		t.Fatal(proxyErr)
	}
	return proxyBin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProxy runs the real proxy binary as the inbound side of app on loopback and
// returns its inbound and admin addresses.
func startProxy(t *testing.T, app string) (inbound, admin string) {
	bin := buildProxy(t)
	inbound, admin = freePort(t), freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"LINKERD2_PROXY_LOG=warn",
		"LINKERD2_PROXY_INBOUND_LISTEN_ADDR="+inbound,
		"LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR="+freePort(t),
		"LINKERD2_PROXY_ADMIN_LISTEN_ADDR="+admin,
		"L5D_PROXY_INBOUND_ORIG_DST="+app,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("proxy stderr:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return inbound, admin
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy admin %s not ready after 60s: %v\n%s", admin, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scrapeAdmin(t *testing.T, admin string) goldenmetrics.Counters {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	c, err := goldenmetrics.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGoldenFromRealProxy puts the real proxy in front of the demo front end and checks
// the figures computed from two scrapes of its /metrics against the traffic sent between
// them.
func TestGoldenFromRealProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the proxy")
	}
	s := demotest.Start(t, ratings.Options{FailureShare: 1}) // every single-item read fails
	app := s.WebURL[len("http://"):]
	inbound, admin := startProxy(t, app)
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string, want int) {
		t.Helper()
		resp, err := client.Get("http://" + inbound + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != want/100 {
			t.Fatalf("GET %s through the proxy = %d, want %dxx", path, resp.StatusCode, want/100)
		}
	}
	// Traffic before the first scrape must not count.
	for range 5 {
		get("/api/items", 200)
	}
	before := scrapeAdmin(t, admin)
	for range 30 {
		get("/api/items", 200)
	}
	for range 10 {
		get("/api/items/kettle", 500)
	}
	after := scrapeAdmin(t, admin)

	d := goldenmetrics.Delta(before, after)
	g := goldenmetrics.Compute(d, 10*time.Second)
	t.Logf("between the scrapes: %+v", g)
	if d.Requests != 40 || g.Responses != 40 {
		t.Errorf("requests %v, responses %v between the scrapes, want 40 and 40", d.Requests, g.Responses)
	}
	if g.SuccessRate != 0.75 || g.RPS != 4 || g.TLSShare != 0 {
		t.Errorf("success %v, rps %v, tls %v; want 0.75, 4 and 0 (no identity)", g.SuccessRate, g.RPS, g.TLSShare)
	}
	if math.IsNaN(g.P50) || g.P50 < 0 || g.P50 > g.P95 || g.P95 > g.P99 {
		t.Errorf("latencies p50 %v p95 %v p99 %v, want 0 <= p50 <= p95 <= p99", g.P50, g.P95, g.P99)
	}
}
