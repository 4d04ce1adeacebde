// Package promtest runs the real Prometheus server for tests and benchmarks, scraping
// fixed exposition text from a loopback HTTP server.
//
// Each target's text is rendered for scrape n = 1..Scrapes and stamped with the
// simulated time Start + n*Step, so the stored series are exactly known whatever the
// machine's load: queries evaluated at End see Scrapes samples Step apart. Every target
// serves scrape n (again and again: same timestamps, Prometheus stores nothing new)
// until Prometheus holds scrape n of every target, then n+1: a scrape that failed or
// timed out on a loaded machine is simply repeated.
package promtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Target is one scraped endpoint: Labels are its target labels (as the viz scrape
// configuration's relabelling produces them: namespace, pod, deployment, ...), Text
// renders its exposition text (without timestamps) for scrape n.
type Target struct {
	Labels map[string]string
	Text   func(n int) string
}

// scrapeMetric is added to every target's text: the number of its scrape.
const scrapeMetric = "promtest_scrape"

// Options configure Run.
type Options struct {
	Targets []Target
	// Scrapes is how many distinct scrapes each target serves (default 9).
	Scrapes int
	// Step is the simulated time between scrapes (default 15s, Linkerd viz's interval).
	Step time.Duration
}

// Prometheus is a running server with its fixture loaded.
type Prometheus struct {
	URL string
	API promv1.API
	// End is the simulated time of the last scrape: evaluate queries there.
	End time.Time
	// Dir is the data directory; RSS reads the process's resident memory.
	Dir string
	cmd *exec.Cmd
}

// Binary returns the Prometheus binary built by tools/prometheus/build.sh (it prints the
// cached path), or fails the test with the command to run.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("L5D_PROMETHEUS_BIN"); p != "" {
		return p
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(root, "tools/prometheus/build.sh")).Output()
	if err != nil {
		t.Fatalf("tools/prometheus/build.sh (make prometheus-bin): %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work above the working directory")
		}
		dir = parent
	}
}

// Run starts Prometheus on loopback with a temporary data directory, serves the
// targets, and returns once every target's last scrape is queryable and Prometheus has
// stopped scraping. Everything stops when the test ends.
func Run(t testing.TB, o Options) *Prometheus {
	t.Helper()
	if o.Scrapes == 0 {
		o.Scrapes = 9
	}
	if o.Step == 0 {
		o.Step = 15 * time.Second
	}
	// Prometheus accepts samples up to an hour older than the newest it holds (its own
	// scrape bookkeeping is stamped now): a fixture up to 50m long ends 10m ago, a longer
	// one starts 55m ago and ends in the future.
	span := time.Duration(o.Scrapes) * o.Step
	start := time.Now().Add(-10*time.Minute - span)
	if span > 50*time.Minute {
		start = time.Now().Add(-55 * time.Minute)
	}
	start = start.Truncate(time.Second)
	end := start.Add(span)

	var current atomic.Int64 // the scrape every target serves
	current.Store(1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics/{i}", func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.PathValue("i"))
		if err != nil || i < 0 || i >= len(o.Targets) {
			http.NotFound(w, r)
			return
		}
		n := int(current.Load())
		ts := strconv.FormatInt(start.Add(time.Duration(n)*o.Step).UnixMilli(), 10)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		text := o.Targets[i].Text(n) + fmt.Sprintf("\n%s %d", scrapeMetric, n)
		for line := range strings.SplitSeq(text, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				fmt.Fprintln(w, line)
				continue
			}
			fmt.Fprintln(w, line, ts)
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })

	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\nscrape_configs:\n")
	for i, tg := range o.Targets {
		fmt.Fprintf(&cfg, "- job_name: fixture-%d\n  metrics_path: /metrics/%d\n  static_configs:\n  - targets: [%q]\n    labels:\n", i, i, l.Addr().String())
		for k, v := range tg.Labels {
			fmt.Fprintf(&cfg, "      %s: %q\n", k, v)
		}
		if len(tg.Labels) == 0 {
			cfg.WriteString("      {}\n")
		}
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Binary(t), "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--storage.tsdb.retention.time=2h")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	pc, err := promapi.NewClient(promapi.Config{Address: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	p := &Prometheus{URL: "http://" + addr, API: promv1.NewAPI(pc), End: end, Dir: dir, cmd: cmd}
	deadline := time.Now().Add(2*time.Minute + time.Duration(o.Scrapes)*time.Second)
	for n := 1; n <= o.Scrapes; n++ {
		current.Store(int64(n))
		// Scrape n is in when every target's scrape counter reads n at its time.
		q := fmt.Sprintf(`count(%s == %d)`, scrapeMetric, n)
		at := start.Add(time.Duration(n) * o.Step)
		for {
			v, _, _, err := p.API.Query(context.Background(), q, at)
			if err == nil {
				if vec, ok := v.(model.Vector); ok && len(vec) == 1 && int(vec[0].Value) == len(o.Targets) {
					break
				}
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(logf.Name())
				t.Fatalf("prometheus did not load scrape %d of %d in time (last error %v); its log:\n%s", n, o.Scrapes, err, log)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Loaded: stop scraping (reload without scrape jobs) so that queries and measurements
	// of the server are not disturbed by scrapes.
	if err := os.WriteFile(cfgPath, []byte("global:\n  scrape_interval: 100ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for {
		tg, err := p.API.Targets(context.Background())
		if err == nil && len(tg.Active) == 0 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus still scraping after its reload: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RSS returns the server's resident set size in bytes (from /proc).
func (p *Prometheus) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
