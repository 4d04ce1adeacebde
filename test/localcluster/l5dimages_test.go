package localcluster

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/l5d-go/l5d/deploy/images"
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

// writeLayout writes an OCI layout to dir with one entry per reference of every image of
// deploy/images at version, annotated as make images annotates them, leaving out the
// references drop names; the identity image holds the program identity (a file the test
// names), the others are empty.
func writeLayout(t *testing.T, dir, version, identity string, drop ...string) {
	t.Helper()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range images.All() {
		var img v1.Image = empty.Image
		if spec.Name == "identity" {
			if img, err = ProgramImage(identity); err != nil {
				t.Fatal(err)
			}
		}
		for _, ref := range spec.Refs(version) {
			if slices.Contains(drop, ref) {
				continue
			}
			if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
				images.RefNameAnnotation: ref, images.ContainerdNameAnnotation: ref,
			})); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestCheckL5DLayout: a layout of every image at the CLI's version passes; one lacking an
// image, one at another version, a directory that is no layout, and one built from other
// binaries than bin/'s each fail with an error naming the layout, what is wrong and make
// images. A program rewritten after the layout with the same bytes still passes.
func TestCheckL5DLayout(t *testing.T) {
	bin := t.TempDir()
	identity := filepath.Join(bin, "identity")
	if err := os.WriteFile(identity, []byte("identity v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Every program in bin/ older than the layouts below.
	if err := os.Chtimes(identity, time.Unix(1e9, 0), time.Unix(1e9, 0)); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "oci")
	writeLayout(t, good, "v9", identity)
	if err := checkL5DLayout(good, "v9", bin); err != nil {
		t.Fatalf("a complete layout at the CLI's version: %v", err)
	}

	proxy := images.L5DRepo + "/proxy:v9"
	lacking := filepath.Join(t.TempDir(), "oci")
	writeLayout(t, lacking, "v9", identity, proxy, "docker.io/prom/prometheus:"+images.PrometheusTag)
	old := filepath.Join(t.TempDir(), "oci")
	writeLayout(t, old, "v8", identity)
	notLayout := t.TempDir()
	for _, tc := range []struct {
		name, dir string
		want      []string
	}{
		{"lacks images", lacking, []string{lacking, "lacks docker.io/prom/prometheus:" + images.PrometheusTag + ", " + proxy, "version v9", "make images"}},
		{"another version", old, []string{old, "version v9", "tagged v8 (make images' VERSION)", "ghcr.io/l5d-go/proxy:v9", "images no build makes: ", "ghcr.io/l5d-go/proxy:v8", "make images"}},
		{"no layout", notLayout, []string{notLayout, "not an OCI image layout", "make images"}},
	} {
		err := checkL5DLayout(tc.dir, "v9", bin)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v; want an error with %q", tc.name, err, w)
			}
		}
	}

	// bin/identity written after the layout: the same bytes pass, others fail.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(identity, later, later); err != nil {
		t.Fatal(err)
	}
	if err := checkL5DLayout(good, "v9", bin); err != nil {
		t.Errorf("bin/identity rewritten with the same bytes: %v", err)
	}
	if err := os.WriteFile(identity, []byte("identity v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(identity, later, later); err != nil {
		t.Fatal(err)
	}
	err := checkL5DLayout(good, "v9", bin)
	for _, w := range []string{good, "other binaries", identity, "ghcr.io/l5d-go/identity:v9", "make images"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("bin/identity changed after the layout: %v; want an error with %q", err, w)
		}
	}
}

// TestL5DImageLayoutFromTheEnvironment: with L5D_IMAGE_LAYOUT set, the layout it names is
// used, not built, when it holds the images at the version of the repository's bin/linkerd;
// otherwise the error names the variable.
func TestL5DImageLayoutFromTheEnvironment(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	version, err := L5DVersion(context.Background(), filepath.Join(root, "bin"))
	if err != nil {
		t.Fatalf("needs make build's bin/linkerd: %v", err)
	}
	identity := filepath.Join(t.TempDir(), "identity")
	if err := os.WriteFile(identity, []byte("identity"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	writeLayout(t, dir, version, identity)
	out := filepath.Join(t.TempDir(), "built")
	t.Setenv(L5DImageLayoutEnv, dir)
	got, err := L5DImageLayout(context.Background(), root, out, nil)
	if err != nil || got != dir {
		t.Fatalf("L5DImageLayout = %q, %v; want %s", got, err, dir)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("L5DImageLayout built into %s although %s was set", out, L5DImageLayoutEnv)
	}
	other := filepath.Join(t.TempDir(), "oci")
	writeLayout(t, other, version+"-other", identity)
	t.Setenv(L5DImageLayoutEnv, other)
	if _, err := L5DImageLayout(context.Background(), root, out, nil); err == nil ||
		!strings.Contains(err.Error(), L5DImageLayoutEnv) || !strings.Contains(err.Error(), other) {
		t.Errorf("L5DImageLayout of a layout at another version: %v; want an error naming it and %s", err, L5DImageLayoutEnv)
	}
}

// TestMakeImagesLayoutIsL5DImages: the layout make test passes in L5D_IMAGE_LAYOUT (make
// images' bin/images/oci) holds what BuildL5DImages makes: the same references, its l5d
// images tagged with the version bin/linkerd reports (make images' VERSION is the CLI's).
func TestMakeImagesLayoutIsL5DImages(t *testing.T) {
	dir := os.Getenv(L5DImageLayoutEnv)
	if dir == "" {
		t.Skipf("%s is not set (make test sets it to make images' layout)", L5DImageLayoutEnv)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckL5DLayout(context.Background(), root, dir); err != nil {
		t.Fatal(err)
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

// BenchmarkL5DImages: what a real-node cluster spends on its l5d images before pushing
// them, building them from bin/ (BuildL5DImages, what each suite did) against checking the
// layout make test built once (L5DImageLayout with L5D_IMAGE_LAYOUT). Run with
// -benchtime 1x -count N and compare the medians.
func BenchmarkL5DImages(b *testing.B) {
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	built := filepath.Join(b.TempDir(), "oci")
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			if _, err := BuildL5DImages(ctx, root, built, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("layout", func(b *testing.B) {
		b.Setenv(L5DImageLayoutEnv, built)
		for b.Loop() {
			if _, err := L5DImageLayout(ctx, root, filepath.Join(b.TempDir(), "unused"), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
