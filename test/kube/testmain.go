package kube

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// pkgCluster is the control plane of this test binary, started by the first Shared call.
var pkgCluster struct {
	mu       sync.Mutex
	main     bool // Main is running
	skip     bool // L5D_SKIP_KUBE=1
	opts     Options
	once     sync.Once
	cluster  *Cluster
	err      error
	watching sync.Map // testing.TB -> struct{}: log tails registered
}

// Main is the body of a test package's TestMain. It runs the tests and exits with their
// status; the package's control plane starts on the first Shared call (tests that never
// call it pay nothing) and is stopped when the tests end, or on SIGINT/SIGTERM/SIGHUP.
// With L5D_SKIP_KUBE=1 no control plane starts and Shared skips the calling test.
//
//	func TestMain(m *testing.M) { kube.Main(m, kube.Options{ControllerManager: true}) }
func Main(m *testing.M, opts Options) {
	os.Exit(runMain(m, opts))
}

func runMain(m *testing.M, opts Options) int {
	pkgCluster.mu.Lock()
	pkgCluster.main = true
	pkgCluster.opts = opts
	pkgCluster.skip = os.Getenv("L5D_SKIP_KUBE") == "1"
	pkgCluster.mu.Unlock()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig, ok := <-sigs
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "kube: %v: stopping the test control plane\n", sig)
		stopAll()
		os.Exit(1)
	}()
	defer func() {
		signal.Stop(sigs)
		close(sigs)
	}()

	code := m.Run()
	stopAll()
	return code
}

// Shared returns the control plane of the test binary, starting it on first use. It fails
// the test when the package has no TestMain calling Main, or when the control plane cannot
// start (for example when the binaries are missing: the message names `make kube-bins`),
// and skips it when L5D_SKIP_KUBE=1. When the test fails, what each component logged
// during the test is printed (the last lines of it).
func Shared(t testing.TB) *Cluster {
	t.Helper()
	pkgCluster.mu.Lock()
	main, skip, opts := pkgCluster.main, pkgCluster.skip, pkgCluster.opts
	pkgCluster.mu.Unlock()
	if !main {
		t.Fatal("kube.Shared: the test package needs `func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }`")
	}
	if skip {
		t.Skip("kube: L5D_SKIP_KUBE=1: skipping a test that needs the Kubernetes API server")
	}
	pkgCluster.once.Do(func() {
		pkgCluster.cluster, pkgCluster.err = Start(opts)
	})
	if pkgCluster.err != nil {
		t.Fatal(pkgCluster.err)
	}
	c := pkgCluster.cluster
	if _, seen := pkgCluster.watching.LoadOrStore(t, struct{}{}); !seen {
		c.tailOnFailure(t)
	}
	return c
}

// tailLines is how many lines of each component log a failed test prints.
const tailLines = 30

// tailOnFailure prints, when t fails, the last lines each component logged after now.
func (c *Cluster) tailOnFailure(t testing.TB) {
	offsets := map[string]int64{}
	for name, p := range c.procs {
		if st, err := os.Stat(p.logPath); err == nil {
			offsets[name] = st.Size()
		}
	}
	t.Cleanup(func() {
		defer pkgCluster.watching.Delete(t)
		if !t.Failed() {
			return
		}
		names := make([]string, 0, len(c.procs))
		for name := range c.procs {
			names = append(names, name)
		}
		sort.Strings(names)
		quiet := true
		for _, name := range names {
			tail := tailLog(c.procs[name].logPath, offsets[name], tailLines)
			if strings.TrimSpace(tail) == "" {
				continue
			}
			quiet = false
			t.Logf("kube: %s logged during the test (last %d lines of %s):\n%s", name, tailLines, c.procs[name].logPath, tail)
		}
		if quiet {
			t.Logf("kube: no component logged anything during the test")
		}
		if os.Getenv("L5D_KUBE_KEEP") != "1" {
			t.Logf("kube: set L5D_KUBE_KEEP=1 to keep the full component logs in %s", filepath.Join(c.dir, "logs"))
		}
	})
}

// tailLog returns the last n lines of the file at path written after offset.
func tailLog(path string, offset int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	// Read at most 256 KiB from the end; enough for the last lines of any component.
	const window = 256 << 10
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot stat %s: %v)", path, err)
	}
	from := max(offset, st.Size()-window)
	if from > st.Size() {
		return ""
	}
	b, err := io.ReadAll(io.NewSectionReader(f, from, st.Size()-from))
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
