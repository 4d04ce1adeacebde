package registry

import (
	"archive/tar"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/l5d-go/l5d/deploy/images"
)

// testVersion tags the l5d images the tests build.
const testVersion = "v0.0.0-registry-test"

var (
	buildOnce sync.Once
	buildDir  string
	built     []images.Built
	buildErr  error
	testEpoch = time.Unix(1700000000, 0)
	repoRoot  = func() string { r, _ := filepath.Abs("../.."); return r }()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildAll builds every image from the repository's bin/ (make build) once per test binary
// and returns the layout and what was built.
func buildAll(t *testing.T) (string, []images.Built) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(repoRoot, "bin", "proxy")); err != nil {
		t.Fatalf("the test needs the built binaries in %s/bin (make build): %v", repoRoot, err)
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "l5d-images-test-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var extra map[string]string // Prometheus and Jaeger (tools/*/build.sh)
		if extra, buildErr = images.ToolBins(ctx, repoRoot); buildErr != nil {
			return
		}
		built, buildErr = images.Build(ctx, images.All(), images.Options{
			BinDir: filepath.Join(repoRoot, "bin"), ExtraBins: extra,
			Out: filepath.Join(buildDir, "oci"), Version: testVersion, Epoch: testEpoch,
		})
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "oci"), built
}

// TestServesImagesUnderChartNames: every image make images builds is served by the registry
// under its repository path and tag, pulls back with the same digest, and has the table's
// user, entrypoint, command, ports and labels; the hosts.toml files mirror the public
// registries to it.
func TestServesImagesUnderChartNames(t *testing.T) {
	lay, built := buildAll(t)
	ctx := context.Background()
	r, err := Start(ctx, Options{Layout: lay})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.Loaded) != len(built) {
		t.Fatalf("loaded %d images, built %d", len(r.Loaded), len(built))
	}
	for _, b := range built {
		t.Run(b.Image.Name, func(t *testing.T) {
			ref, err := r.Ref(b.Ref)
			if err != nil {
				t.Fatal(err)
			}
			tag, err := name.NewTag(ref)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(tag, remote.WithContext(ctx))
			if err != nil {
				t.Fatalf("pulling %s: %v", ref, err)
			}
			d, err := img.Digest()
			if err != nil || d != b.Digest {
				t.Fatalf("digest of %s = %v (%v), built %v", ref, d, err, b.Digest)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			c, spec := cf.Config, b.Image
			if c.User != spec.User || !slices.Equal(c.Entrypoint, spec.Entrypoint) || !slices.Equal(c.Cmd, spec.Cmd) {
				t.Errorf("config user %q entrypoint %q cmd %q, want %q %q %q", c.User, c.Entrypoint, c.Cmd, spec.User, spec.Entrypoint, spec.Cmd)
			}
			for _, p := range spec.ExposedPorts {
				if _, ok := c.ExposedPorts[p]; !ok {
					t.Errorf("port %s not exposed: %v", p, c.ExposedPorts)
				}
			}
			if c.Labels["org.opencontainers.image.title"] != spec.Name || c.Labels["org.opencontainers.image.version"] == "" {
				t.Errorf("labels %v", c.Labels)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Time.Equal(testEpoch) {
				t.Errorf("platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
			}
			// Every file the table places is in the image, executable.
			files := imageFiles(t, img)
			for _, f := range spec.Files {
				h, ok := files[strings.TrimPrefix(f.Path, "/")]
				if !ok || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
					t.Errorf("%s: missing or not executable", f.Path)
				}
			}
			if h, ok := files[strings.TrimPrefix(images.CABundle, "/")]; !ok || h.Size == 0 {
				t.Errorf("no CA bundle at %s", images.CABundle)
			}
		})
	}
	for _, reg := range DefaultMirrors {
		b, err := os.ReadFile(filepath.Join(r.HostsDir, reg, "hosts.toml"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `server = "http://`+r.Advertised+`"`) || !strings.Contains(string(b), `[host."http://`+r.Advertised+`"]`) || !strings.Contains(string(b), `"pull", "resolve"`) {
			t.Errorf("%s/hosts.toml does not send every pull to %s only:\n%s", reg, r.Advertised, b)
		}
	}
}

// imageFiles returns the headers of the image's flattened file system by path.
func imageFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	return extract(t, img).hdr
}

// TestReproducible: building the same images again gives the same digests.
func TestReproducible(t *testing.T) {
	_, first := buildAll(t)
	names := []string{"proxy-init", "nginx", "identity", "echo-advanced"}
	imgs, err := images.Select(names)
	if err != nil {
		t.Fatal(err)
	}
	again, err := images.Build(context.Background(), imgs, images.Options{
		BinDir: filepath.Join(repoRoot, "bin"), Out: filepath.Join(t.TempDir(), "oci"),
		Version: testVersion, Epoch: testEpoch,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]v1.Hash{}
	for _, b := range first {
		want[b.Ref] = b.Digest
	}
	for _, b := range again {
		if want[b.Ref] != b.Digest {
			t.Errorf("%s: digest %v, first build %v", b.Ref, b.Digest, want[b.Ref])
		}
	}
}

// TestDebianProgramsHaveTheirLibraries: in the images built from Debian packages, every
// program's ELF interpreter and every shared library it (or a library it loads) needs is in
// the image, and proxy-init and the xtables programs carry NET_ADMIN and NET_RAW as file
// capabilities.
func TestDebianProgramsHaveTheirLibraries(t *testing.T) {
	lay, built := buildAll(t)
	lp, err := layout.FromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	programs := map[string][]string{
		"proxy-init": {"usr/sbin/xtables-legacy-multi", "usr/sbin/xtables-nft-multi"},
		"cni-plugin": {"usr/sbin/xtables-legacy-multi", "usr/sbin/xtables-nft-multi"},
		"nginx":      {"usr/sbin/nginx"},
	}
	for _, b := range built {
		progs, ok := programs[b.Image.Name]
		if !ok {
			continue
		}
		t.Run(b.Image.Name, func(t *testing.T) {
			img, err := lp.Image(b.Digest)
			if err != nil {
				t.Fatal(err)
			}
			fs := extract(t, img)
			for _, p := range progs {
				checkELF(t, fs, p, map[string]bool{})
			}
			if b.Image.Name == "proxy-init" {
				for _, p := range append(progs, "usr/lib/linkerd/proxy-init") {
					h := fs.hdr[p]
					if h == nil || h.PAXRecords["SCHILY.xattr.security.capability"] == "" {
						t.Errorf("%s has no file capabilities", p)
					}
				}
			}
		})
	}
}

// flatFS is an image's flattened file system in memory.
type flatFS struct {
	hdr  map[string]*tar.Header
	data map[string][]byte
}

func extract(t *testing.T, img v1.Image) flatFS {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	fs := flatFS{hdr: map[string]*tar.Header{}, data: map[string][]byte{}}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fs
		}
		if err != nil {
			t.Fatal(err)
		}
		p := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		fs.hdr[p] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			fs.data[p] = b
		}
	}
}

// resolve follows symbolic links (the merged-/usr ones included) to a regular file.
func (fs flatFS) resolve(p string) (string, bool) {
	for range 40 {
		// Resolve the directories first.
		parts := strings.Split(p, "/")
		cur := ""
		for i, part := range parts {
			next := path.Join(cur, part)
			h := fs.hdr[next]
			if h != nil && h.Typeflag == tar.TypeSymlink && i < len(parts)-1 {
				next = fs.linkTarget(next, h.Linkname)
			}
			cur = next
		}
		h := fs.hdr[cur]
		if h == nil {
			return "", false
		}
		if h.Typeflag != tar.TypeSymlink {
			return cur, h.Typeflag == tar.TypeReg
		}
		p = fs.linkTarget(cur, h.Linkname)
	}
	return "", false
}

func (fs flatFS) linkTarget(at, target string) string {
	if path.IsAbs(target) {
		return strings.TrimPrefix(path.Clean(target), "/")
	}
	return path.Join(path.Dir(at), target)
}

// checkELF checks p's interpreter and, recursively, its needed libraries.
func checkELF(t *testing.T, fs flatFS, p string, seen map[string]bool) {
	t.Helper()
	if seen[p] {
		return
	}
	seen[p] = true
	real, ok := fs.resolve(p)
	if !ok {
		t.Errorf("%s: not in the image", p)
		return
	}
	f, err := elf.NewFile(strings.NewReader(string(fs.data[real])))
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, _ := io.ReadAll(prog.Open())
			interp := strings.TrimPrefix(strings.TrimRight(string(b), "\x00"), "/")
			if _, ok := fs.resolve(interp); !ok {
				t.Errorf("%s: interpreter /%s not in the image", p, interp)
			}
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	for _, lib := range libs {
		found := false
		for _, dir := range []string{"usr/lib/x86_64-linux-gnu", "usr/lib", "lib/x86_64-linux-gnu"} {
			if _, ok := fs.resolve(path.Join(dir, lib)); ok {
				checkELF(t, fs, path.Join(dir, lib), seen)
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s needs %s, which is not in the image", p, lib)
		}
	}
}

// TestBadInput: errors name the problem.
func TestBadInput(t *testing.T) {
	if err := WriteHosts(t.TempDir(), "no-port", DefaultMirrors); err == nil || !strings.Contains(err.Error(), "no-port") {
		t.Errorf("WriteHosts with a mirror without port: %v", err)
	}
	if err := WriteHosts(t.TempDir(), "127.0.0.1:5000", []string{"a/b"}); err == nil || !strings.Contains(err.Error(), "a/b") {
		t.Errorf("WriteHosts with a bad registry name: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "nothing")
	if _, err := Start(context.Background(), Options{Layout: missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Start with a missing layout: %v", err)
	}
	if _, err := images.Select([]string{"no-such-image"}); err == nil || !strings.Contains(err.Error(), "no-such-image") {
		t.Errorf("Select of an unknown image: %v", err)
	}
}

// TestPushUnderPrefix: make images-push's Push copies every image to a registry under a
// path prefix, keeping repository paths and tags.
func TestPushUnderPrefix(t *testing.T) {
	lay, built := buildAll(t)
	ctx := context.Background()
	r, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pushed, err := images.Push(ctx, lay, r.Addr+"/team", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pushed) != len(built) {
		t.Fatalf("pushed %d images, built %d", len(pushed), len(built))
	}
	for _, b := range built {
		repo, err := images.Repository(b.Ref)
		if err != nil {
			t.Fatal(err)
		}
		ref := r.Addr + "/team/" + repo + ":" + b.Ref[strings.LastIndex(b.Ref, ":")+1:]
		d, err := remote.Head(mustTag(t, ref), remote.WithContext(ctx))
		if err != nil || d.Digest != b.Digest {
			t.Errorf("%s: %v %v, want digest %v", ref, d, err, b.Digest)
		}
	}
}

func mustTag(t *testing.T, ref string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}
