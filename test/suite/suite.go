// Package suite runs the tests of one package against a set-up they all share (a local
// cluster with the control plane installed), made once in TestMain: where it cannot be
// made (not root, L5D_SKIP_KUBE, -short) every test skips, and when making it failed
// every test fails with the set-up's error.
package suite

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"testing"
	"time"
)

// Shared is a package's shared set-up. S is what its tests use (a pointer to the
// package's Suite).
type Shared[S comparable] struct {
	// Name prefixes the messages ("e2e").
	Name string
	// Timeout bounds the set-up and every test: the context given to SetUp ends then.
	Timeout time.Duration
	// SetUp makes the shared state. cleanup, when not nil, is run after the tests (also
	// when err is not nil, to undo what was done).
	SetUp func(ctx context.Context) (s S, cleanup func(), err error)
	// DumpLogs, when not nil, writes the set-up's logs after a failed set-up or test run.
	DumpLogs func(s S, w io.Writer)

	s       S
	skipWhy string
	err     error
	took    time.Duration
}

// Main is the package's TestMain body: it makes the set-up, runs the tests and undoes
// the set-up, returning the exit code (os.Exit(sh.Main(m))).
func (sh *Shared[S]) Main(m *testing.M) int {
	flag.Parse()
	switch {
	case os.Geteuid() != 0:
		sh.skipWhy = sh.Name + ": needs root (pods are network namespaces)"
	case os.Getenv("L5D_SKIP_KUBE") != "":
		sh.skipWhy = sh.Name + ": L5D_SKIP_KUBE is set"
	case testing.Short():
		sh.skipWhy = sh.Name + ": -short"
	}
	if sh.skipWhy != "" {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), sh.Timeout)
	defer cancel()
	start := time.Now()
	s, cleanup, err := sh.SetUp(ctx)
	sh.s, sh.err, sh.took = s, err, time.Since(start)
	fmt.Printf("%s: set up in %v (err: %v)\n", sh.Name, sh.took.Round(time.Second), err)
	code := m.Run()
	var none S
	if sh.DumpLogs != nil && s != none && (code != 0 || err != nil) {
		sh.DumpLogs(s, os.Stdout)
	}
	if cleanup != nil {
		cleanup()
	}
	return code
}

// Need returns the shared state, skipping t where the set-up cannot be made here and
// failing it when the set-up failed.
func (sh *Shared[S]) Need(t testing.TB) S {
	t.Helper()
	if sh.skipWhy != "" {
		t.Skip(sh.skipWhy)
	}
	if sh.err != nil {
		t.Fatalf("%s set-up (after %v): %v", sh.Name, sh.took.Round(time.Second), sh.err)
	}
	return sh.s
}

// Undo lists the steps undoing a set-up as it is made; Run runs them last first.
type Undo []func()

// Add appends a step.
func (u *Undo) Add(step func()) { *u = append(*u, step) }

// Run runs the steps in reverse order and forgets them.
func (u *Undo) Run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = nil
}
