// Command l5d-charts (make charts; build.sh builds it) packages every Helm chart under a directory for a release, reproducibly:
// each chart as `helm package` lays it out (<name>-<version>.tgz, by Helm's own loader and
// archiver), a Helm repository index.yaml over them, and for each chart an OCI image layout
// (oci/<name>/, tagged with the chart version) holding the manifest `helm push` would push:
// Helm's config and chart-layer media types and its annotations. Every timestamp (tar
// entries, gzip header, index, OCI created annotation) is -epoch, so two runs over the same
// sources give the same bytes.
//
//	l5d-charts -charts deploy/charts -out bin/charts -version $(VERSION) -epoch $(git log -1 --format=%ct)
//
// -version is the release (git describe): it becomes each chart's appVersion (the default
// image tag, linkerdVersion) and, made SemVer where it is not (0.0.0-git-<describe>), its
// version.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
)

func main() {
	chartsDir := flag.String("charts", "deploy/charts", "directory with one chart per subdirectory")
	out := flag.String("out", "bin/charts", "output directory (created; the *.tgz, index.yaml and oci/ of a previous run are replaced)")
	version := flag.String("version", "", "release version (git describe), the charts' appVersion")
	epoch := flag.Int64("epoch", 0, "Unix time stamped on every file and in the index (e.g. the commit time)")
	url := flag.String("url", "", "base URL of the chart repository in index.yaml (default: relative)")
	flag.Parse()
	if err := run(*chartsDir, *out, *version, *url, time.Unix(*epoch, 0).UTC()); err != nil {
		fmt.Fprintln(os.Stderr, "l5d-charts:", err)
		os.Exit(1)
	}
}

// ChartVersion returns the SemVer 2 chart version of a release version: the release itself
// without a leading "v" when it is SemVer (v1.2.3, v1.2.3-4-gabcdef), else
// 0.0.0-git-<release> (a bare commit, a -dirty tree).
func ChartVersion(release string) (string, error) {
	if release == "" {
		return "", errors.New("no release version (-version)")
	}
	v := strings.TrimPrefix(release, "v")
	if _, err := semver.StrictNewVersion(v); err == nil {
		return v, nil
	}
	if !regexp.MustCompile(`^[0-9A-Za-z.-]+$`).MatchString(release) {
		return "", fmt.Errorf("release version %q: only letters, digits, '.' and '-' can make a chart version", release)
	}
	v = "0.0.0-git-" + strings.ReplaceAll(release, ".", "-")
	if _, err := semver.StrictNewVersion(v); err != nil {
		return "", fmt.Errorf("release version %q: %w", release, err)
	}
	return v, nil
}

func run(chartsDir, out, release, url string, stamp time.Time) error {
	version, err := ChartVersion(release)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(chartsDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// Only what a previous run wrote goes: out may hold other files.
	old, err := filepath.Glob(filepath.Join(out, "*.tgz"))
	if err != nil {
		return err
	}
	for _, p := range append(old, filepath.Join(out, "index.yaml"), filepath.Join(out, "oci")) {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	index := repo.NewIndexFile()
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		c, err := loader.Load(filepath.Join(chartsDir, e.Name()))
		if err != nil {
			return fmt.Errorf("chart %s: %w", e.Name(), err)
		}
		c.Metadata.Version, c.Metadata.AppVersion = version, release
		if err := c.Validate(); err != nil {
			return fmt.Errorf("chart %s: %w", e.Name(), err)
		}
		tgz, err := archive(c, stamp)
		if err != nil {
			return fmt.Errorf("chart %s: %w", e.Name(), err)
		}
		name := fmt.Sprintf("%s-%s.tgz", c.Name(), version)
		if err := os.WriteFile(filepath.Join(out, name), tgz, 0o644); err != nil {
			return err
		}
		sum := sha256.Sum256(tgz)
		if err := index.MustAdd(c.Metadata, name, url, hex.EncodeToString(sum[:])); err != nil {
			return fmt.Errorf("index %s: %w", name, err)
		}
		if err := ociLayout(filepath.Join(out, "oci", c.Name()), c.Metadata, tgz, stamp); err != nil {
			return fmt.Errorf("OCI layout of %s: %w", name, err)
		}
		fmt.Println(filepath.Join(out, name))
	}
	if len(index.Entries) == 0 {
		return fmt.Errorf("no chart under %s", chartsDir)
	}
	index.Generated = stamp
	for _, versions := range index.Entries {
		for _, v := range versions {
			v.Created = stamp
		}
	}
	index.SortEntries()
	return index.WriteFile(filepath.Join(out, "index.yaml"), 0o644)
}

// archive returns c packaged by Helm (chartutil.Save: the files and order `helm package`
// writes) with every time stamp set to stamp.
func archive(c *chart.Chart, stamp time.Time) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "charts-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	p, err := chartutil.Save(c, tmp)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Header = zr.Header
	zw.Header.ModTime = time.Time{}
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		h.ModTime, h.AccessTime, h.ChangeTime = stamp, time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ociLayout writes an OCI image layout at dir holding the chart as `helm push` would push it
// (config: the chart's metadata; one layer: the package; Helm's annotations), tagged with the
// chart version. `oras cp --from-oci-layout dir:<version> <registry>/<name>:<version>`
// publishes it.
func ociLayout(dir string, meta *chart.Metadata, tgz []byte, stamp time.Time) error {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	blob := func(mediaType string, data []byte) (ocispec.Descriptor, error) {
		d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
		return d, os.WriteFile(filepath.Join(blobs, d.Digest.Encoded()), data, 0o644)
	}
	config, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	configDesc, err := blob(registry.ConfigMediaType, config)
	if err != nil {
		return err
	}
	layer, err := blob(registry.ChartLayerMediaType, tgz)
	if err != nil {
		return err
	}
	annotations := map[string]string{
		ocispec.AnnotationTitle:   meta.Name,
		ocispec.AnnotationVersion: meta.Version,
		ocispec.AnnotationCreated: stamp.Format(time.RFC3339),
	}
	for k, v := range map[string]string{ocispec.AnnotationDescription: meta.Description, ocispec.AnnotationURL: meta.Home} {
		if v != "" {
			annotations[k] = v
		}
	}
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		Config:      configDesc,
		Layers:      []ocispec.Descriptor{layer},
		Annotations: annotations,
	})
	if err != nil {
		return err
	}
	manifestDesc, err := blob(ocispec.MediaTypeImageManifest, manifest)
	if err != nil {
		return err
	}
	manifestDesc.Annotations = map[string]string{ocispec.AnnotationRefName: meta.Version}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	})
	if err != nil {
		return err
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), layout, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ocispec.ImageIndexFile), index, 0o644)
}
