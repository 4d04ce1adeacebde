package localcluster

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestL5DVersionReadsTheCLI: the version is what make build's linkerd reports (the tag
// its install gives the images); a directory without linkerd is an error naming it and
// make build.
func TestL5DVersionReadsTheCLI(t *testing.T) {
	bin, err := filepath.Abs("../../bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "linkerd")); err != nil {
		t.Fatalf("needs make build's bin/linkerd: %v", err)
	}
	v, err := L5DVersion(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`).MatchString(v) {
		t.Errorf("L5DVersion = %q, not an image tag", v)
	}
	empty := t.TempDir()
	if _, err := L5DVersion(context.Background(), empty); err == nil ||
		!strings.Contains(err.Error(), filepath.Join(empty, "linkerd")) || !strings.Contains(err.Error(), "make build") {
		t.Errorf("L5DVersion of a directory without linkerd: %v; want an error naming it and make build", err)
	}
}

// TestImagesNeedKubelet: asking the node agent's cluster for images fails at once, saying
// what is missing.
func TestImagesNeedKubelet(t *testing.T) {
	for _, opts := range []Options{
		{RunDir: t.TempDir(), L5DImages: "../.."},
		{RunDir: t.TempDir(), ImageLayouts: []string{"bin/images/oci"}},
	} {
		if c, err := Up(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "need Options.Kubelet") {
			if c != nil {
				c.Close()
			}
			t.Errorf("Up(%+v): %v; want an error saying Options.Kubelet is needed", opts, err)
		}
	}
}

// TestPodLogFilesOfBothKindsOfNode: the node agent's and the kubelet's log layouts, one
// namespace or all, sorted.
func TestPodLogFilesOfBothKindsOfNode(t *testing.T) {
	dir := t.TempDir()
	files := []string{
		"pods/l5d-demo_web-1/logs/web.log",
		"pods/linkerd_identity-1/logs/identity.log",
		"nodes/l5d-node/pod-logs/l5d-demo_catalog-1_0f1e/catalog/0.log",
		"nodes/l5d-node-2/pod-logs/l5d-demo_catalog-2_9a8b/linkerd-proxy/1.log",
		"nodes/l5d-node/pod-logs/linkerd_destination-1_77aa/policy/0.log",
	}
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rel := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i], _ = filepath.Rel(dir, p)
		}
		return out
	}
	if got, want := rel(PodLogFiles(dir, "l5d-demo")), []string{files[3], files[2], files[0]}; !slices.Equal(got, want) {
		t.Errorf("PodLogFiles(l5d-demo) = %q, want %q", got, want)
	}
	all := slices.Clone(files)
	slices.Sort(all)
	if got := rel(PodLogFiles(dir, "*")); !slices.Equal(got, all) {
		t.Errorf("PodLogFiles(*) = %q, want %q", got, all)
	}
}
