// Command l5d-registry serves make images' OCI layout from a local registry until
// interrupted, and writes the containerd hosts.toml files that mirror ghcr.io, docker.io
// and registry.k8s.io to it (package test/registry):
//
//	l5d-registry -listen 127.0.0.1:5000 -layout bin/images/oci [-dir DIR]
//	ctr images pull --hosts-dir DIR/hosts ghcr.io/l5d-go/proxy:<version>
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/l5d-go/l5d/test/registry"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5000", "address to serve the registry on")
	advertise := flag.String("advertise", "", "host:port the hosts.toml files name (default: the listen address)")
	lay := flag.String("layout", "bin/images/oci", "OCI layout to serve (make images); empty serves an empty registry")
	dir := flag.String("dir", "", "directory for the blobs and hosts.toml files (default: a temporary one, removed at exit)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := registry.Start(ctx, registry.Options{Listen: *listen, Advertise: *advertise, Layout: *lay, Dir: *dir, Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "l5d-registry:", err)
		os.Exit(1)
	}
	for _, ref := range r.Loaded {
		fmt.Println(ref)
	}
	fmt.Printf("serving on %s; containerd config_path (ctr --hosts-dir): %s\n", r.Addr, r.HostsDir)
	<-ctx.Done()
	if err := r.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "l5d-registry:", err)
		os.Exit(1)
	}
}
