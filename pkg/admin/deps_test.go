package admin

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProxySafePackagesDoNotLinkKubernetes guards the rule that the proxy never links
// k8s.io/*: the pkg packages the proxy may import must not depend on any k8s.io module,
// directly or through another package.
func TestProxySafePackagesDoNotLinkKubernetes(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not in PATH")
	}
	pkgs := []string{
		"github.com/l5d-go/l5d/pkg/admin",
		"github.com/l5d-go/l5d/pkg/certs",
		"github.com/l5d-go/l5d/pkg/logging",
		"github.com/l5d-go/l5d/pkg/rpc",
	}
	for _, p := range pkgs {
		out, err := exec.Command(goBin, "list", "-deps", p).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", p, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "k8s.io/") || strings.HasPrefix(dep, "sigs.k8s.io/") {
				t.Errorf("%s depends on %s; the proxy must not link Kubernetes packages", p, dep)
			}
		}
	}
}
