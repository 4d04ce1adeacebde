package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshotDir is where vizDashboard also saves its screenshots, so that they outlive
// the test's artifact directory (kept only with -artifacts).
const screenshotDir = "/tmp/l5d-dashboard-screenshots"

// vizDashboard runs `linkerd viz dashboard --show url` and drives a real headless
// Chromium against it: the demo namespace's page lists web, catalog and ratings meshed
// with traffic (ratings at about 75% success), web's page shows its edges to catalog and
// ratings, and starting tap in the page shows live requests. It saves a full-page
// screenshot of each step, and checks that a request with a foreign Host is refused.
func (s *Suite) vizDashboard(t *testing.T, ns string) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("dashboard checks took %s", time.Since(start).Round(time.Second)) }()
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the dashboard test needs Debian's chromium (make test-deps installs it): %v", err)
	}

	ctx, cancel := context.WithCancel(s.Ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Linkerd(), "viz", "dashboard", "--show", "url", "--port", "0", "--wait", "3m")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Cluster.Kubeconfig())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var printed []string
		for sc.Scan() {
			printed = append(printed, sc.Text())
			if len(printed) == 2 && printed[0] == "Linkerd dashboard available at:" && strings.HasPrefix(printed[1], "http://localhost:") {
				urls <- printed[1]
			}
		}
		close(urls)
	}()
	var url string
	select {
	case u, ok := <-urls:
		if !ok {
			t.Fatalf("viz dashboard ended without printing its address: %s", stderr.String())
		}
		url = u
	case <-time.After(4 * time.Minute):
		t.Fatalf("viz dashboard printed no address within 4m: %s", stderr.String())
	}
	t.Logf("viz dashboard: %s", url)

	get := func(host, path string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+path, nil)
		if host != "" {
			req.Host = host
		}
		rsp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer rsp.Body.Close()
		body, _ := io.ReadAll(rsp.Body)
		return rsp.StatusCode, string(body)
	}
	if code, body := get("", "/"); code != http.StatusOK || !strings.Contains(body, "<title>Linkerd dashboard</title>") {
		t.Errorf("GET %s/: HTTP %d %.300q, want the dashboard", url, code, body)
	}
	if code, body := get("", "/api/health"); code != http.StatusOK || !strings.Contains(body, `"component":"web"`) {
		t.Errorf("GET %s/api/health: HTTP %d %.300q, want the pods of the control plane and viz", url, code, body)
	}
	// DNS rebinding: the same relay, the attacker's name as Host.
	if code, body := get("evil.example.com", "/"); code != http.StatusBadRequest || !strings.Contains(body, "evil.example.com") {
		t.Errorf("Host evil.example.com: HTTP %d %q, want 400 naming the host", code, body)
	}

	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	shots := []string{t.ArtifactDir(), screenshotDir}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := func(name string) {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		for _, d := range shots {
			if err := os.WriteFile(filepath.Join(d, name), png, 0o644); err != nil {
				t.Error(err)
			}
		}
	}
	// rows reads a table of the page as text cells (nil until it exists).
	rows := func(id string) ([][]string, error) {
		return chromedp.Run(bctx, chromedp.Evaluate[[][]string](fmt.Sprintf(`(() => {
			const t = document.getElementById(%q);
			return t ? [...t.rows].slice(1).map(r => [...r.cells].map(c => c.textContent)) : null;
		})()`, id)))
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(url+"/#/namespaces/"+ns)); err != nil {
		t.Fatal(err)
	}
	// Columns: Name, Meshed, Success rate, RPS, P50, P95, P99.
	s.Eventually(t, 2*time.Minute, "the namespace page lists web, catalog and ratings meshed with traffic", func() string {
		got, err := rows("deployments")
		if err != nil || got == nil {
			page, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
			return fmt.Sprintf("no deployments table yet (%v); the page reads: %.500q", err, page)
		}
		seen := map[string][]string{}
		for _, r := range got {
			seen[r[0]] = r
		}
		for _, name := range []string{"web", "catalog", "ratings"} {
			r := seen[name]
			if r == nil {
				return fmt.Sprintf("no row %s in %v", name, got)
			}
			rps, err := strconv.ParseFloat(r[3], 64)
			if r[1] != "1/1" || err != nil || rps <= 0 {
				return fmt.Sprintf("row %s = %v, want meshed 1/1 and RPS > 0", name, r)
			}
		}
		sr, err := strconv.ParseFloat(strings.TrimSuffix(seen["ratings"][2], "%"), 64)
		if err != nil || sr < 65 || sr > 85 {
			return fmt.Sprintf("ratings success rate %q, want about 75%%", seen["ratings"][2])
		}
		return ""
	})
	shot("1-namespace.png")

	if err := chromedp.Do(bctx, chromedp.Navigate(url+"/#/namespaces/"+ns+"/deployment/web")); err != nil {
		t.Fatal(err)
	}
	// Columns: Direction, Resource, Namespace, Client identity, Server identity, Secured.
	s.Eventually(t, time.Minute, "web's page shows its secured edges to catalog and ratings", func() string {
		got, err := rows("edges")
		if err != nil || got == nil {
			return fmt.Sprintf("no edges table yet (%v)", err)
		}
		for _, dst := range []string{"catalog", "ratings"} {
			found := false
			for _, r := range got {
				if len(r) == 6 && r[0] == "outbound" && r[1] == dst && strings.HasPrefix(r[5], "yes") &&
					strings.HasPrefix(r[4], dst+".") && strings.HasPrefix(r[3], "web.") {
					found = true
				}
			}
			if !found {
				return fmt.Sprintf("no secured outbound edge to %s in %v", dst, got)
			}
		}
		return ""
	})
	shot("2-web-deployment.png")

	if err := chromedp.Do(bctx, chromedp.Click(chromedp.ID("tap-start"))); err != nil {
		t.Fatal(err)
	}
	// Columns: Direction, From, To, Method, Path, Status, Latency.
	s.Eventually(t, time.Minute, "the page's tap shows live requests of web", func() string {
		got, err := rows("tap-events")
		if err != nil {
			return err.Error()
		}
		for _, r := range got {
			if len(r) == 7 && r[4] != "" && r[5] != "" {
				return ""
			}
		}
		status, _ := chromedp.Run(bctx, chromedp.TextContent(chromedp.ID("status")))
		return fmt.Sprintf("no answered request in %v (status %q)", got, status)
	})
	shot("3-web-tap.png")
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.ID("tap-stop"))); err != nil {
		t.Error(err)
	}
	t.Logf("screenshots in %s and %s", screenshotDir, t.ArtifactDir())
}
