package localcluster

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/l5d-go/l5d/test/netns"
	"github.com/l5d-go/l5d/test/registry"
)

// RegistryPort is the port of the cluster's image registry on NodeIP, where the real nodes'
// containerd pulls from (Options.Kubelet).
const RegistryPort = 5000

// MirroredRegistries are the public registries whose names the real nodes' containerd
// resolves through the cluster's registry instead (hosts.toml mirrors), so manifests name
// images as they would anywhere: ghcr.io/l5d-go/proxy:v1 is l5d-go/proxy:v1 in the local
// registry, registry.k8s.io/pause:3.10 is pause:3.10, and docker.io/library/nginx is
// library/nginx (what "nginx" means).
var MirroredRegistries = registry.DefaultMirrors

// registryServer serves an OCI distribution handler on NodeIP:RegistryPort inside the node
// namespace (for containerd) and on a host loopback port (for pushes from the host).
type registryServer struct {
	srv      *http.Server
	hostAddr string
}

// startRegistry serves h in the node namespace and on host loopback. A nil h is a new,
// empty in-memory registry (go-containerregistry's registry package).
func startRegistry(node *netns.Namespace, h http.Handler, logger *slog.Logger) (*registryServer, error) {
	if h == nil {
		h = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	}
	nodeLn, err := node.Listen("tcp", netip.AddrPortFrom(NodeIP, RegistryPort).String())
	if err != nil {
		return nil, fmt.Errorf("localcluster: registry listener in the node namespace: %w", err)
	}
	hostLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		nodeLn.Close()
		return nil, fmt.Errorf("localcluster: registry listener on host loopback: %w", err)
	}
	r := &registryServer{
		srv:      &http.Server{Handler: h, ReadHeaderTimeout: time.Minute, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)},
		hostAddr: hostLn.Addr().String(),
	}
	for _, ln := range []net.Listener{nodeLn, hostLn} {
		go func() {
			if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("registry stopped serving", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	return r, nil
}

// Close stops serving.
func (r *registryServer) Close() error { return r.srv.Close() }

// RegistryHost is the host loopback address (host:port) of the cluster's registry, for
// pushing images from the host (go-containerregistry, crane); "" unless Options.Kubelet.
// Inside the node namespace the same registry is NodeIP:RegistryPort.
func (c *Cluster) RegistryHost() string {
	if c.registry == nil {
		return ""
	}
	return c.registry.hostAddr
}

// PushImage pushes img to the cluster's registry as repo:tag, e.g. "l5d-test/hello:v1",
// which pods then name as ghcr.io/l5d-test/hello:v1 (or through any other of
// MirroredRegistries). It fails unless Options.Kubelet is set.
func (c *Cluster) PushImage(ctx context.Context, repoTag string, img v1.Image) error {
	ref, err := c.registryTag(repoTag)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("localcluster: pushing %s: %w", ref, err)
	}
	return nil
}

// registryTag is repoTag in the cluster's registry.
func (c *Cluster) registryTag(repoTag string) (name.Tag, error) {
	if c.registry == nil {
		return name.Tag{}, errors.New("localcluster: pushing images needs Options.Kubelet (the node agent has no registry)")
	}
	ref, err := name.NewTag(c.registry.hostAddr+"/"+strings.TrimPrefix(repoTag, "/"), name.Insecure)
	if err != nil {
		return name.Tag{}, fmt.Errorf("localcluster: image name %q: %w", repoTag, err)
	}
	return ref, nil
}

// Reference-name annotations of an OCI layout's index.json that PushLayout reads, in order.
const (
	containerdNameAnnotation = "io.containerd.image.name"
	ociRefNameAnnotation     = "org.opencontainers.image.ref.name"
)

// PushLayout pushes every image (or image index) of the OCI image layout at dir to the
// cluster's registry under the reference its index.json entry names, registry dropped:
// the io.containerd.image.name annotation, else org.opencontainers.image.ref.name, holding
// a whole reference such as ghcr.io/l5d-go/proxy:v1 (pushed as l5d-go/proxy:v1). An entry
// without one, or with a bare tag, is an error naming it.
func (c *Cluster) PushLayout(ctx context.Context, dir string) error {
	l, err := readLayout(dir)
	if err != nil {
		return err
	}
	for _, d := range l.entries {
		ref := refName(d)
		if !strings.Contains(ref, "/") {
			return fmt.Errorf("localcluster: OCI layout %s: manifest %s is named %q, not a whole reference (want %s or %s like ghcr.io/org/name:tag)", dir, d.Digest, ref, containerdNameAnnotation, ociRefNameAnnotation)
		}
		parsed, err := name.NewTag(ref)
		if err != nil {
			return fmt.Errorf("localcluster: OCI layout %s: manifest %s: %w", dir, d.Digest, err)
		}
		dst, err := c.registryTag(parsed.RepositoryStr() + ":" + parsed.TagStr())
		if err != nil {
			return err
		}
		if d.MediaType.IsIndex() {
			ii, err := l.idx.ImageIndex(d.Digest)
			if err == nil {
				err = remote.WriteIndex(dst, ii, remote.WithContext(ctx))
			}
			if err != nil {
				return fmt.Errorf("localcluster: pushing %s from %s: %w", ref, dir, err)
			}
			continue
		}
		img, err := l.idx.Image(d.Digest)
		if err == nil {
			err = remote.Write(dst, img, remote.WithContext(ctx))
		}
		if err != nil {
			return fmt.Errorf("localcluster: pushing %s from %s: %w", ref, dir, err)
		}
	}
	return nil
}

// ociLayout is an OCI image layout's index: its entries and the reference each names.
type ociLayout struct {
	dir     string
	idx     v1.ImageIndex
	entries []v1.Descriptor
	refs    map[string]v1.Hash // refName of each entry
}

// readLayout reads the index of the OCI layout at dir.
func readLayout(dir string) (*ociLayout, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("localcluster: %s is not an OCI image layout (make images writes bin/images/oci): %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("localcluster: OCI layout %s: %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("localcluster: OCI layout %s: %w", dir, err)
	}
	l := &ociLayout{dir: dir, idx: idx, entries: m.Manifests, refs: map[string]v1.Hash{}}
	for _, d := range m.Manifests {
		l.refs[refName(d)] = d.Digest
	}
	return l, nil
}

// refName is the reference an index entry names: its io.containerd.image.name annotation,
// else its org.opencontainers.image.ref.name.
func refName(d v1.Descriptor) string {
	if ref := d.Annotations[containerdNameAnnotation]; ref != "" {
		return ref
	}
	return d.Annotations[ociRefNameAnnotation]
}

// ProgramImage is a linux/amd64 OCI image holding only the executable at path, as
// /<base name of path>, which is its entrypoint. The program must be static (a Go program
// built with CGO_ENABLED=0): the image has no libc, no shell and no /etc. It runs as root
// unless the pod's securityContext says otherwise.
func ProgramImage(path string) (v1.Image, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("localcluster: image program: %w", err)
	}
	base := filepath.Base(path)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, h := range []*tar.Header{
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: epoch},
		{Name: base, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin)), ModTime: epoch},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("localcluster: image layer: %w", err)
		}
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, fmt.Errorf("localcluster: image layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("localcluster: image layer: %w", err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("localcluster: image layer: %w", err)
	}
	img := mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return nil, fmt.Errorf("localcluster: image: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("localcluster: image configuration: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Entrypoint = []string{"/" + base}
	cfg.Config.Env = []string{"PATH=/"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, fmt.Errorf("localcluster: image configuration: %w", err)
	}
	return img, nil
}
