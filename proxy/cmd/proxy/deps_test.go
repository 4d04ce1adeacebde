package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoTraceDependencies checks that the proxy built with -tags grpcnotrace (as make
// build, the image and the benchmarks build it) links neither x/net/trace nor the
// template packages, whose code would stay mapped in every proxy.
func TestNoTraceDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-tags", "grpcnotrace", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "golang.org/x/net/trace", "html/template", "text/template":
			t.Errorf("the proxy links %s", pkg)
		}
	}
}
