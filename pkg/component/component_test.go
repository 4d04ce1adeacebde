package component

import (
	"flag"
	"strings"
	"testing"
)

// TestSharedFlags: every component gets the same shared flags, and what they build.
func TestSharedFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	f := Register(fs, "linkerd-x", ":9999")
	for _, name := range []string{"admin-addr", "enable-pprof", "kubeconfig", "log-level", "log-format"} {
		if fs.Lookup(name) == nil {
			t.Errorf("flag -%s not registered", name)
		}
	}
	if err := fs.Parse([]string{"-admin-addr", "127.0.0.1:0", "-enable-pprof"}); err != nil {
		t.Fatal(err)
	}
	c, err := f.Start()
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminAddr != "127.0.0.1:0" || c.Log == nil || c.Admin == nil {
		t.Fatalf("component %+v", c)
	}
	mfs, err := c.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	all := strings.Join(names, " ")
	if !strings.Contains(all, "go_goroutines") || !strings.Contains(all, "process_") {
		t.Errorf("registry lacks the Go and process collectors: %s", all)
	}
	if c.Kube().UserAgent != "linkerd-x" {
		t.Errorf("user agent %q", c.Kube().UserAgent)
	}
}

func TestBadLogFlagIsNamed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	Register(fs, "linkerd-x", ":9999")
	err := fs.Parse([]string{"-log-level", "loud"})
	if err == nil || !strings.Contains(err.Error(), "log-level") {
		t.Fatalf("error %v, want it to name -log-level", err)
	}
}
