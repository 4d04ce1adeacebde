package images

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// toolScripts are the programs of images that make build does not put in bin/, each with
// the script (under the repository root) that builds it into a cache and prints its path
// on its last line.
var toolScripts = map[string]string{
	"prometheus": "tools/prometheus/build.sh", // image prom/prometheus
	"all-in-one": "tools/jaeger/build.sh",     // image jaegertracing/all-in-one
}

// ToolBins runs the scripts of the repository at root that build Prometheus and Jaeger
// (each builds its program on first use, then answers from its cache) and returns their
// programs as Options.ExtraBins takes them.
func ToolBins(ctx context.Context, root string) (map[string]string, error) {
	bins := map[string]string{}
	for bin, rel := range toolScripts {
		script := filepath.Join(root, rel)
		cmd := exec.CommandContext(ctx, script)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("images: %s: %w\n%s", script, err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		p := strings.TrimSpace(lines[len(lines)-1])
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return nil, fmt.Errorf("images: %s printed %q, not a program", script, p)
		}
		bins[bin] = p
	}
	return bins, nil
}
