package localcluster

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/l5d-go/l5d/deploy/images"
)

// L5DImageLayoutEnv names the environment variable that, when set, is an OCI image layout
// of l5d's images (make images' bin/images/oci) which Options.L5DImages uses instead of
// building them: make test builds the images once and every real-node suite reads them.
// The layout must be what BuildL5DImages would make (see CheckL5DLayout); unset, every
// cluster builds its own.
const L5DImageLayoutEnv = "L5D_IMAGE_LAYOUT"

// L5DVersion returns the version the linkerd CLI in binDir reports (`linkerd version
// --client`): the tag its install, viz install and jaeger install give the l5d images.
func L5DVersion(ctx context.Context, binDir string) (string, error) {
	cli := filepath.Join(binDir, "linkerd")
	out, err := exec.CommandContext(ctx, cli, "version", "--client").Output()
	if err != nil {
		return "", fmt.Errorf("localcluster: %s version --client (make build): %w", cli, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Client version:"); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("localcluster: %s version --client printed no \"Client version:\" line: %q", cli, out)
}

// L5DImageLayout returns the OCI layout of l5d's images for the repository at root, as
// Options.L5DImages pushes them: the layout $L5D_IMAGE_LAYOUT names (a relative path is
// taken from the working directory), once CheckL5DLayout accepts it, or, when the variable
// is unset or empty, a fresh BuildL5DImages into out.
func L5DImageLayout(ctx context.Context, root, out string, log *slog.Logger) (string, error) {
	dir := os.Getenv(L5DImageLayoutEnv)
	if dir == "" {
		return BuildL5DImages(ctx, root, out, log)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("localcluster: %s=%s: %w", L5DImageLayoutEnv, dir, err)
	}
	began := time.Now()
	if err := CheckL5DLayout(ctx, root, abs); err != nil {
		return "", fmt.Errorf("%w (from %s; unset it to build the images in the test)", err, L5DImageLayoutEnv)
	}
	log.Info("l5d images from a layout", "layout", abs, "checked in", time.Since(began).Round(time.Millisecond))
	return abs, nil
}

// CheckL5DLayout checks that the OCI image layout at dir holds what BuildL5DImages would
// build from root's bin/: exactly the references of every image of deploy/images (Prometheus
// and Jaeger among them), the l5d ones tagged with the version root's bin/linkerd reports,
// and programs no older than bin/'s (a program of bin/ changed after the layout was written
// is compared with the image's copy). Its errors name the layout and what is wrong.
func CheckL5DLayout(ctx context.Context, root, dir string) error {
	bin := filepath.Join(root, "bin")
	version, err := L5DVersion(ctx, bin)
	if err != nil {
		return err
	}
	return checkL5DLayout(dir, version, bin)
}

// checkL5DLayout is CheckL5DLayout for the CLI version version and the programs of binDir.
func checkL5DLayout(dir, version, binDir string) error {
	l, err := readLayout(dir)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	var missing []string
	for _, img := range images.All() {
		for _, ref := range img.Refs(version) {
			want[ref] = true
			if _, ok := l.refs[ref]; !ok {
				missing = append(missing, ref)
			}
		}
	}
	var extra, tags []string
	for ref := range l.refs {
		if want[ref] {
			continue
		}
		extra = append(extra, ref)
		if rest, ok := strings.CutPrefix(ref, images.L5DRepo+"/"); ok {
			if _, tag, ok := strings.Cut(rest, ":"); ok && !slices.Contains(tags, tag) {
				tags = append(tags, tag)
			}
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	slices.Sort(tags)
	if len(missing) > 0 || len(extra) > 0 {
		msg := fmt.Sprintf("localcluster: OCI layout %s is not l5d's images at version %s (what %s version --client reports)",
			dir, version, filepath.Join(binDir, "linkerd"))
		if len(tags) > 0 {
			msg += fmt.Sprintf(": its l5d images are tagged %s (make images' VERSION)", strings.Join(tags, ", "))
		}
		if len(missing) > 0 {
			msg += "; it lacks " + strings.Join(missing, ", ")
		}
		if len(extra) > 0 {
			msg += "; it has images no build makes: " + strings.Join(extra, ", ")
		}
		return errors.New(msg + "; rebuild it with make images (which also runs make build, so that the CLI and the tags agree)")
	}
	return l.checkPrograms(version, binDir)
}

// checkPrograms fails when a program of binDir that an image of l carries was written after
// the layout's index and differs from the image's copy: the layout was built from other
// binaries. Programs not in binDir (Prometheus and Jaeger) are not checked.
func (l *ociLayout) checkPrograms(version, binDir string) error {
	st, err := os.Stat(filepath.Join(l.dir, "index.json"))
	if err != nil {
		return fmt.Errorf("localcluster: OCI layout %s: %w", l.dir, err)
	}
	written := st.ModTime()
	for _, img := range images.All() {
		for _, f := range img.Files {
			prog := filepath.Join(binDir, f.Bin)
			pst, err := os.Stat(prog)
			if err != nil || !pst.ModTime().After(written) {
				continue
			}
			ref := img.Ref(version)
			same, err := l.holds(ref, f.Path, prog)
			if err != nil {
				return err
			}
			if !same {
				return fmt.Errorf("localcluster: OCI layout %s was built from other binaries: %s (changed at %s, after the layout was written at %s) is not image %s's %s; rebuild it with make images",
					l.dir, prog, pst.ModTime().UTC().Format(time.RFC3339), written.UTC().Format(time.RFC3339), ref, f.Path)
			}
		}
	}
	return nil
}

// holds reports whether the file at filePath in image ref of l has the bytes of the file prog.
func (l *ociLayout) holds(ref, filePath, prog string) (bool, error) {
	want, err := os.ReadFile(prog)
	if err != nil {
		return false, fmt.Errorf("localcluster: %w", err)
	}
	img, err := l.idx.Image(l.refs[ref])
	if err != nil {
		return false, fmt.Errorf("localcluster: OCI layout %s: image %s: %w", l.dir, ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return false, fmt.Errorf("localcluster: OCI layout %s: image %s: %w", l.dir, ref, err)
	}
	inTar := strings.TrimPrefix(path.Clean(filePath), "/")
	for i := len(layers) - 1; i >= 0; i-- { // the image's own files are in its last layer
		data, found, err := layerFile(layers[i], inTar)
		if err != nil {
			return false, fmt.Errorf("localcluster: OCI layout %s: image %s: %w", l.dir, ref, err)
		}
		if found {
			return bytes.Equal(data, want), nil
		}
	}
	return false, nil
}

// layerFile returns the contents of the regular file name (a path without a leading /) in
// layer, and whether the layer has it.
func layerFile(layer v1.Layer, name string) ([]byte, bool, error) {
	rc, err := layer.Uncompressed()
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		if strings.TrimPrefix(path.Clean(h.Name), "/") == name && h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			return data, err == nil, err
		}
	}
}

// BuildL5DImages builds every image of deploy/images (the control plane, proxy,
// proxy-init, CNI plugin, viz, jaeger, multicluster, the demo app, nginx, echo-advanced,
// pause, Prometheus and Jaeger) as make images does, from the binaries in root's bin/
// (make build), tagged with the version bin/linkerd reports, into a fresh OCI image layout
// at out, which it returns: what Options.ImageLayouts takes. So `linkerd install` run with
// that bin/linkerd installs exactly these images. Prometheus and Jaeger are the servers
// root's tools/prometheus/build.sh and tools/jaeger/build.sh print (each builds its server
// into a cache on first use). Debian packages are cached as make images caches them.
func BuildL5DImages(ctx context.Context, root, out string, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin := filepath.Join(root, "bin")
	version, err := L5DVersion(ctx, bin)
	if err != nil {
		return "", err
	}
	extra, err := images.ToolBins(ctx, root)
	if err != nil {
		return "", err
	}
	began := time.Now()
	if _, err := images.Build(ctx, images.All(), images.Options{
		BinDir: bin, ExtraBins: extra, Out: out, Version: version, Epoch: time.Unix(0, 0), Log: log,
	}); err != nil {
		return "", fmt.Errorf("localcluster: building l5d's images from %s: %w", bin, err)
	}
	log.Info("l5d images built", "version", version, "layout", out, "took", time.Since(began).Round(time.Millisecond))
	return out, nil
}
