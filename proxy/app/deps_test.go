package app

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProxyDoesNotLinkKubernetes enforces that no non-test package of the proxy module
// depends, directly or indirectly, on a Kubernetes module.
func TestProxyDoesNotLinkKubernetes(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not in PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/l5d-go/l5d/proxy/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 10 {
		t.Fatalf("go list returned too little to be a real dependency list: %q", out)
	}
	for _, dep := range pkgs {
		if strings.HasPrefix(dep, "k8s.io/") || strings.HasPrefix(dep, "sigs.k8s.io/") {
			t.Errorf("the proxy depends on %s; it must never link Kubernetes packages", dep)
		}
	}
}
