package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KubeVersion is the Kubernetes release the control plane binaries are built from.
const KubeVersion = "v1.34.4"

// BinDir returns the directory holding the cached control-plane binaries: $L5D_KUBE_BIN_DIR
// when set, else $XDG_CACHE_HOME/l5d/kube-<version> (or ~/.cache/...), the same place
// `make kube-bins` (test/kubebins/build.sh) writes to.
func BinDir() string {
	if d := os.Getenv("L5D_KUBE_BIN_DIR"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "l5d", "kube-"+KubeVersion)
}

// findBinaries returns the absolute path of every program the options need, or an error
// naming the missing ones and the command that builds them.
func findBinaries(opts Options) (map[string]string, error) {
	dir := BinDir()
	need := []string{"etcd", "kube-apiserver"}
	if opts.ControllerManager {
		need = append(need, "kube-controller-manager")
	}
	if opts.Scheduler {
		need = append(need, "kube-scheduler")
	}
	paths := make(map[string]string, len(need))
	var missing []string
	for _, name := range need {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, name)
			continue
		}
		paths[name] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kube: the Kubernetes %s test binaries %s are missing from %s; "+
			"build them with `make kube-bins` at the repository root (or point L5D_KUBE_BIN_DIR at a "+
			"directory holding them)",
			KubeVersion, strings.Join(missing, ", "), dir)
	}
	return paths, nil
}
