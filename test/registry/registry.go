// Package registry serves l5d's images (make images' OCI layout) to the local cluster's
// containerd nodes: an OCI distribution registry (go-containerregistry's) on an address of
// the caller's choosing, loaded with every image of the layout under its repository path, and
// a directory of containerd hosts.toml files (config_path style) that mirror the public
// registries the charts and manifests name (ghcr.io, docker.io, registry.k8s.io) to it, so
// that manifests naming ghcr.io/l5d-go/proxy:<version>, nginx:latest or
// registry.k8s.io/gateway-api/echo-advanced pull unchanged.
//
// A node points containerd at the directory with
//
//	[plugins."io.containerd.grpc.v1.cri".registry]
//	  config_path = "<Registry.HostsDir>"
//
// and `ctr images pull --hosts-dir <Registry.HostsDir>` uses it too.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"

	"github.com/l5d-go/l5d/deploy/images"
)

// DefaultMirrors are the registries the hosts.toml files redirect to the local registry:
// those of the l5d charts (ghcr.io), of Docker Hub names (nginx, prom/prometheus) and of the
// Gateway API conformance manifests (registry.k8s.io).
var DefaultMirrors = []string{"docker.io", "ghcr.io", "registry.k8s.io"}

// Options of Start.
type Options struct {
	// Listen is the address to listen on (default 127.0.0.1:0). Nodes in network namespaces
	// of their own need an address they can reach, e.g. the node bridge's.
	Listen string
	// Advertise is the host:port written into the hosts.toml files (default: the listener's
	// address).
	Advertise string
	// Layout is the OCI layout to load (make images: bin/images/oci); empty loads nothing.
	Layout string
	// Dir holds the registry's blobs and the hosts.toml directory (default: a new temporary
	// directory, removed by Close).
	Dir string
	// Mirrors are the registries to mirror (default DefaultMirrors).
	Mirrors []string
	// Log receives the registry's request log and progress; nil discards them.
	Log *slog.Logger
}

// Registry is a running registry.
type Registry struct {
	// Addr is the host:port the registry listens on.
	Addr string
	// Advertised is the host:port the hosts.toml files name.
	Advertised string
	// HostsDir is containerd's config_path: <HostsDir>/<registry>/hosts.toml per mirror.
	HostsDir string
	// Loaded are the references of the layout's images, as the layout names them.
	Loaded []string

	srv     *http.Server
	done    chan error
	tempDir string
}

// Start runs a registry and loads opts.Layout into it. Close stops it. A local cluster whose
// nodes reach this machine at 10.250.0.1, say:
//
//	r, err := registry.Start(ctx, registry.Options{
//		Listen: "10.250.0.1:0", Layout: filepath.Join(root, "bin", "images", "oci")})
//	// each node's containerd: config_path = r.HostsDir; images resolve to r.Advertised
//
// and `ctr -n k8s.io images pull --hosts-dir r.HostsDir ghcr.io/l5d-go/proxy:<version>` pulls
// what the charts name.
func Start(ctx context.Context, opts Options) (*Registry, error) {
	lg := opts.Log
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	r := &Registry{done: make(chan error, 1)}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "l5d-registry-")
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		dir, r.tempDir = d, d
	}
	blobs := filepath.Join(dir, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		r.cleanup()
		return nil, fmt.Errorf("registry: %w", err)
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		r.cleanup()
		return nil, fmt.Errorf("registry: listening on %s: %w", opts.Listen, err)
	}
	r.Addr = ln.Addr().String()
	r.Advertised = opts.Advertise
	if r.Advertised == "" {
		r.Advertised = r.Addr
	}
	h := ggcr.New(
		ggcr.WithBlobHandler(ggcr.NewDiskBlobHandler(blobs)),
		ggcr.Logger(log.New(slogWriter{lg}, "", 0)),
	)
	r.srv = &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go func() { r.done <- r.srv.Serve(ln) }()

	r.HostsDir = filepath.Join(dir, "hosts")
	mirrors := opts.Mirrors
	if len(mirrors) == 0 {
		mirrors = DefaultMirrors
	}
	if err := WriteHosts(r.HostsDir, r.Advertised, mirrors); err != nil {
		r.Close()
		return nil, err
	}
	if opts.Layout != "" {
		pushed, err := images.Push(ctx, opts.Layout, r.Addr, nil)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("registry: loading %s: %w", opts.Layout, err)
		}
		for _, p := range pushed {
			r.Loaded = append(r.Loaded, p.From)
			lg.Debug("registry: loaded", "image", p.From, "as", p.To)
		}
	}
	lg.Info("registry serving", "addr", r.Addr, "hosts", r.HostsDir, "images", len(r.Loaded))
	return r, nil
}

// Close stops the registry and removes the directory Start made.
func (r *Registry) Close() error {
	var err error
	if r.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if e := r.srv.Shutdown(ctx); e != nil {
			r.srv.Close()
		}
		if e := <-r.done; e != nil && !errors.Is(e, http.ErrServerClosed) {
			err = fmt.Errorf("registry: %w", e)
		}
		r.srv = nil
	}
	r.cleanup()
	return err
}

func (r *Registry) cleanup() {
	if r.tempDir != "" {
		os.RemoveAll(r.tempDir)
		r.tempDir = ""
	}
}

// Ref returns where ref (as the charts name it) is in this registry: Advertised plus its
// repository path and tag or digest ("ghcr.io/l5d-go/proxy:v1" -> "<addr>/l5d-go/proxy:v1").
func (r *Registry) Ref(ref string) (string, error) {
	p, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("registry: image reference %q: %w", ref, err)
	}
	sep := ":"
	if _, ok := p.(name.Digest); ok {
		sep = "@"
	}
	return r.Advertised + "/" + p.Context().RepositoryStr() + sep + p.Identifier(), nil
}

// WriteHosts writes containerd's registry configuration directory (config_path):
// <dir>/<registry>/hosts.toml for each of registries, whose server is mirror (host:port,
// plain HTTP), so that containerd pulls and resolves those names from the local registry
// only and never tries the public registry (tests reach nothing outside the machine).
func WriteHosts(dir, mirror string, registries []string) error {
	if _, _, err := net.SplitHostPort(mirror); err != nil {
		return fmt.Errorf("registry: mirror %q is not host:port: %w", mirror, err)
	}
	for _, reg := range registries {
		if reg == "" || strings.ContainsAny(reg, "/\\ ") {
			return fmt.Errorf("registry: %q is not a registry host name", reg)
		}
		d := filepath.Join(dir, reg)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		content := fmt.Sprintf("# Written by l5d's test/registry: %s is served by the local registry only.\n"+
			"server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n",
			reg, "http://"+mirror, "http://"+mirror)
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(content), 0o644); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
	}
	return nil
}

// slogWriter turns the registry's log lines into debug records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(p)), "component", "registry")
	return len(p), nil
}
