package localcluster

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// programImage is ProgramImage of a file "app" holding "#!program", and that file's path.
func programImage(t *testing.T) (v1.Image, string) {
	t.Helper()
	prog := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(prog, []byte("#!program"), 0o700); err != nil {
		t.Fatal(err)
	}
	img, err := ProgramImage(prog)
	if err != nil {
		t.Fatal(err)
	}
	return img, prog
}

func TestProgramImage(t *testing.T) {
	img, prog := programImage(t)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || strings.Join(cfg.Config.Entrypoint, " ") != "/app" {
		t.Errorf("config: os %q, arch %q, entrypoint %q; want linux, amd64, [/app]", cfg.OS, cfg.Architecture, cfg.Config.Entrypoint)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h.Mode
		if h.Name == "app" {
			b, _ := io.ReadAll(tr)
			if string(b) != "#!program" {
				t.Errorf("/app holds %q", b)
			}
		}
	}
	if files["app"] != 0o755 || files["tmp/"] != 0o1777 {
		t.Errorf("layer files and modes: %v; want app 0755 and tmp/ 01777", files)
	}
	// Built twice from the same program, the image is the same (fixed times).
	again, err := ProgramImage(prog)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds of one program differ: %s, %s", d1, d2)
	}
	if _, err := ProgramImage(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("ProgramImage of a missing file: %v; want an error naming it", err)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/run/a`:             "/run/a",
		`/tmp/with\040space`: "/tmp/with space",
		`/tmp/tab\011x`:      "/tmp/tab\tx",
		`/tmp/back\134slash`: `/tmp/back\slash`,
		`/tmp/trailing\04`:   `/tmp/trailing\04`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPushLayoutNeedsWholeReferences(t *testing.T) {
	img, _ := programImage(t)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{ociRefNameAnnotation: "v1"})); err != nil {
		t.Fatal(err)
	}
	var c Cluster
	if err := c.PushLayout(context.Background(), dir); err == nil || !strings.Contains(err.Error(), `named "v1", not a whole reference`) {
		t.Errorf("PushLayout of a layout naming a bare tag: %v; want an error naming it", err)
	}
	missing := filepath.Join(t.TempDir(), "nothing")
	if err := c.PushLayout(context.Background(), missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("PushLayout of a missing directory: %v; want an error naming it", err)
	}
}
