package images

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations of the layout's index entries naming each image.
const (
	// RefNameAnnotation is the OCI annotation; its value is the full reference.
	RefNameAnnotation = "org.opencontainers.image.ref.name"
	// ContainerdNameAnnotation is what `ctr images import` names an image by.
	ContainerdNameAnnotation = "io.containerd.image.name"
)

// Options of Build.
type Options struct {
	// BinDir holds the binaries (make build's bin/).
	BinDir string
	// ExtraBins maps a File.Bin to a path outside BinDir (prometheus: the cached build).
	ExtraBins map[string]string
	// Out is the OCI image layout to write; it is replaced.
	Out string
	// Version is the tag of the images without a fixed one (the release, make's VERSION).
	Version string
	// Epoch is every time stamp of the images (files and config), e.g. the commit's time.
	Epoch time.Time
	// DebCache is where the Debian packages are cached (DefaultDebCache when empty).
	DebCache string
	// Tarballs also writes <Out>/../<name>.tar, a `docker save` archive of each image that
	// `ctr images import` takes.
	Tarballs bool
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// Built is one image written by Build.
type Built struct {
	Image  Image
	Ref    string
	Digest v1.Hash
}

// Build builds imgs into a fresh OCI image layout at opts.Out, one index entry per reference
// (an image with extra tags has several), annotated with it, in the order of imgs. It returns
// one Built per reference.
func Build(ctx context.Context, imgs []Image, opts Options) ([]Built, error) {
	if opts.Version == "" {
		return nil, fmt.Errorf("images: no version to tag the l5d images with")
	}
	if _, err := name.NewTag("example.com/l5d:" + opts.Version); err != nil {
		return nil, fmt.Errorf("images: version %q is not a valid tag: %w", opts.Version, err)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cacheDir := opts.DebCache
	if cacheDir == "" {
		d, err := DefaultDebCache()
		if err != nil {
			return nil, err
		}
		cacheDir = d
	}
	cache := debCache{dir: cacheDir}
	epoch := opts.Epoch.UTC().Truncate(time.Second)

	base, err := baseTree(ctx, cache)
	if err != nil {
		return nil, fmt.Errorf("images: base layer: %w", err)
	}
	baseLayer, err := base.layer(epoch)
	if err != nil {
		return nil, fmt.Errorf("images: base layer: %w", err)
	}
	if err := os.RemoveAll(opts.Out); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	lp, err := layout.Write(opts.Out, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("images: layout %s: %w", opts.Out, err)
	}
	var built []Built
	for _, spec := range imgs {
		img, err := buildOne(ctx, spec, baseLayer, cache, opts, epoch)
		if err != nil {
			return nil, fmt.Errorf("images: %s: %w", spec.Name, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, fmt.Errorf("images: %s: %w", spec.Name, err)
		}
		refs := spec.Refs(opts.Version)
		tags := map[name.Tag]v1.Image{}
		for _, ref := range refs {
			if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
				RefNameAnnotation: ref, ContainerdNameAnnotation: ref,
			})); err != nil {
				return nil, fmt.Errorf("images: %s: writing %s: %w", spec.Name, opts.Out, err)
			}
			tag, err := name.NewTag(ref)
			if err != nil {
				return nil, fmt.Errorf("images: %s: %w", spec.Name, err)
			}
			tags[tag] = img
			built = append(built, Built{Image: spec, Ref: ref, Digest: d})
		}
		if opts.Tarballs {
			p := filepath.Join(filepath.Dir(opts.Out), spec.Name+".tar")
			if err := tarball.MultiRefWriteToFile(p, toRefs(tags)); err != nil {
				return nil, fmt.Errorf("images: %s: %w", spec.Name, err)
			}
		}
		ref := refs[0]
		log.Info("image built", "ref", ref, "digest", d.String())
	}
	return built, nil
}

// buildOne assembles one image: the base layer, the Debian layer of a Debian image, then a
// layer with the image's own files.
func buildOne(ctx context.Context, spec Image, baseLayer v1.Layer, cache debCache, opts Options, epoch time.Time) (v1.Image, error) {
	layers := []v1.Layer{baseLayer}
	own := newTree()
	if spec.Base == Debian {
		t, err := debianTree(ctx, cache, spec.Debs)
		if err != nil {
			return nil, err
		}
		if spec.Setup != nil {
			if err := spec.Setup(t); err != nil {
				return nil, err
			}
		}
		l, err := t.layer(epoch)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	} else if spec.Setup != nil {
		if err := spec.Setup(own); err != nil {
			return nil, err
		}
	}
	for _, f := range spec.Files {
		src := filepath.Join(opts.BinDir, f.Bin)
		if p, ok := opts.ExtraBins[f.Bin]; ok {
			src = p
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("binary %s (run make build): %w", f.Bin, err)
		}
		if spec.Base == Static {
			if err := checkStatic(src, data); err != nil {
				return nil, err
			}
		}
		e := entry{Path: f.Path, Type: tar.TypeReg, Mode: 0o755, Data: data}
		if len(f.Caps) > 0 {
			e.Xattrs = map[string][]byte{"security.capability": fileCaps(f.Caps...)}
		}
		if err := own.add(e); err != nil {
			return nil, err
		}
	}
	links := make([]string, 0, len(spec.Links))
	for l := range spec.Links {
		links = append(links, l)
	}
	sort.Strings(links)
	for _, l := range links {
		if err := own.symlink(l, spec.Links[l]); err != nil {
			return nil, err
		}
	}
	if len(own.entries) > 0 {
		l, err := own.layer(epoch)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}

	ports := map[string]struct{}{}
	for _, p := range spec.ExposedPorts {
		ports[p] = struct{}{}
	}
	cfg := &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:         spec.User,
			Entrypoint:   spec.Entrypoint,
			Cmd:          spec.Cmd,
			Env:          append([]string{defaultPath}, spec.Env...),
			WorkingDir:   spec.WorkingDir,
			StopSignal:   spec.StopSignal,
			Labels:       labels(spec, opts.Version),
			ExposedPorts: ports,
		},
	}
	if len(ports) == 0 {
		cfg.Config.ExposedPorts = nil
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	adds := make([]mutate.Addendum, 0, len(layers))
	for i, l := range layers {
		adds = append(adds, mutate.Addendum{
			Layer:     l,
			MediaType: types.OCILayer,
			History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "l5d images: " + layerNames(spec)[i]},
		})
	}
	return mutate.Append(img, adds...)
}

func toRefs(tags map[name.Tag]v1.Image) map[name.Reference]v1.Image {
	out := make(map[name.Reference]v1.Image, len(tags))
	for t, img := range tags {
		out[t] = img
	}
	return out
}

// checkStatic fails when the ELF program data needs a dynamic loader, which an image on the
// Static base does not have (the program would fail with "no such file or directory").
func checkStatic(src string, data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s is not an ELF program: %w", src, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; the image has no C library: build it with CGO_ENABLED=0 (make build)", src)
		}
	}
	return nil
}

// layerNames says what each layer of spec holds, for the image history.
func layerNames(spec Image) []string {
	n := []string{"base (users, CA certificates, /tmp)"}
	if spec.Base == Debian {
		n = append(n, fmt.Sprintf("Debian packages %v", spec.Debs))
	}
	return append(n, spec.Name+" files", spec.Name+" files")
}

// labels are the OCI labels of an image.
func labels(spec Image, version string) map[string]string {
	v := spec.Tag
	if v == "" {
		v = version
	}
	return map[string]string{
		"org.opencontainers.image.title":       spec.Name,
		"org.opencontainers.image.description": spec.Description,
		"org.opencontainers.image.version":     v,
		"org.opencontainers.image.source":      "https://github.com/l5d-go/l5d",
		"org.opencontainers.image.vendor":      "l5d",
	}
}

// Repository returns the path of ref's repository without its registry
// ("ghcr.io/l5d-go/proxy:v1" -> "l5d-go/proxy"; "nginx:latest" -> "library/nginx"), the
// path a registry mirror serves it under.
func Repository(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	return path.Clean(r.Context().RepositoryStr()), nil
}
