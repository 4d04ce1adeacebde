package localcluster

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/l5d-go/l5d/deploy/images"
)

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
