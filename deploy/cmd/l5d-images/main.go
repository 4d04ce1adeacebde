// Command l5d-images builds l5d's container images as OCI images without a container engine
// (make images) and pushes them to a registry (make images-push):
//
//	l5d-images build -bin bin -out bin/images/oci -version v1.2.3 [-epoch 1700000000] [-prometheus PATH] [-jaeger PATH] [-tarballs] [name...]
//	l5d-images push -layout bin/images/oci -registry host:port
//	l5d-images list
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/l5d-go/l5d/deploy/images"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "l5d-images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: l5d-images build|push|list [flags]")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch args[0] {
	case "build":
		fs := flag.NewFlagSet("build", flag.ContinueOnError)
		bin := fs.String("bin", "bin", "directory of the binaries (make build)")
		out := fs.String("out", "bin/images/oci", "OCI image layout to write (replaced)")
		version := fs.String("version", "", "tag of the l5d images (make's VERSION)")
		epoch := fs.Int64("epoch", 0, "time stamp of every file and image, in seconds since 1970 (e.g. the commit's)")
		prometheus := fs.String("prometheus", "", "the Prometheus binary of image prom/prometheus (tools/prometheus/build.sh); without it that image is skipped")
		jaeger := fs.String("jaeger", "", "the Jaeger all-in-one binary of image jaegertracing/all-in-one (tools/jaeger/build.sh); without it that image is skipped")
		tarballs := fs.Bool("tarballs", false, "also write <name>.tar next to the layout for `ctr images import`")
		debs := fs.String("deb-cache", "", "cache of the Debian packages (default ~/.cache/l5d/debs)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		imgs, err := images.Select(fs.Args())
		if err != nil {
			return err
		}
		extra := map[string]string{}
		for _, x := range []struct{ image, path, flag string }{
			{"prometheus", *prometheus, "-prometheus"},
			{"all-in-one", *jaeger, "-jaeger"},
		} {
			if x.path != "" {
				extra[x.image] = x.path
			} else if len(fs.Args()) == 0 {
				imgs = without(imgs, x.image)
				log.Warn("no "+x.flag+" binary: image not built", "image", x.image)
			}
		}
		built, err := images.Build(ctx, imgs, images.Options{
			BinDir: *bin, ExtraBins: extra, Out: *out, Version: *version,
			Epoch: time.Unix(*epoch, 0), DebCache: *debs, Tarballs: *tarballs, Log: log,
		})
		if err != nil {
			return err
		}
		for _, b := range built {
			fmt.Printf("%s\t%s\n", b.Ref, b.Digest)
		}
		return nil
	case "push":
		fs := flag.NewFlagSet("push", flag.ContinueOnError)
		dir := fs.String("layout", "bin/images/oci", "OCI image layout (make images)")
		registry := fs.String("registry", "", "registry to push to: host[:port][/prefix]")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *registry == "" {
			return errors.New("push: -registry is required (make images-push REGISTRY=host:port)")
		}
		pushed, err := images.Push(ctx, *dir, strings.TrimSuffix(*registry, "/"), nil)
		if err != nil {
			return err
		}
		for _, p := range pushed {
			fmt.Printf("%s\t%s\n", p.From, p.To)
		}
		return nil
	case "list":
		for _, i := range images.All() {
			fmt.Printf("%s\t%s\n", i.Name, i.Ref("<version>"))
		}
		return nil
	}
	return fmt.Errorf("unknown command %q: want build, push or list", args[0])
}

func without(imgs []images.Image, name string) []images.Image {
	out := imgs[:0:0]
	for _, i := range imgs {
		if i.Name != name {
			out = append(out, i)
		}
	}
	return out
}
