package localcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/netns"
)

// realNodesRoot holds a record of every real node of a live cluster on this machine
// (<dir>/owner, kube.WriteOwnerFile's, and <dir>/node.json), so that a cluster whose process
// died without Close (a test timeout, SIGKILL) is cleaned up by the next Up: its
// containers, the shims that keep them, their network namespaces, mounts and cgroups
// would otherwise outlive it. Under /run: nothing there survives a reboot, nor needs to.
const realNodesRoot = "/run/l5d-localcluster"

// nodeRecord is what reclaiming a dead cluster's node needs.
type nodeRecord struct {
	Name       string `json:"name"`
	Dir        string `json:"dir"`
	Sock       string `json:"sock"`
	CgroupRoot string `json:"cgroupRoot"`
	// Sysctls are the host's kernel settings before the cluster's first kubelet started.
	Sysctls map[string]string `json:"sysctls,omitempty"`
}

// record writes n's record and returns its directory, which close removes.
func (n *realNode) record(sysctls map[string]string) (string, error) {
	dir := filepath.Join(realNodesRoot, filepath.Base(n.cgroupRoot))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("localcluster: recording node %s: %w", n.name, err)
	}
	if err := kube.WriteOwnerFile(filepath.Join(dir, "owner")); err != nil {
		return dir, fmt.Errorf("localcluster: recording node %s: %w", n.name, err)
	}
	b, err := json.Marshal(nodeRecord{Name: n.name, Dir: n.dir, Sock: n.sock, CgroupRoot: n.cgroupRoot, Sysctls: sysctls})
	if err != nil {
		return dir, fmt.Errorf("localcluster: recording node %s: %w", n.name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node.json"), b, 0o600); err != nil {
		return dir, fmt.Errorf("localcluster: recording node %s: %w", n.name, err)
	}
	return dir, nil
}

// reclaimDeadNodes cleans up after the real nodes of clusters whose process has ended:
// containerd is started again on the node's configuration, in this cluster's node
// namespace (the pod namespaces are files of their own; CNI DEL touches only them and the
// dead cluster's address files), so that the CRI stops and removes every
// sandbox, which ends the shims and tears the pod networks down, then the mounts and
// cgroups go as in Close, and the kernel settings the dead cluster found are put back. Best effort: failures are logged, not returned.
func reclaimDeadNodes(node *netns.Namespace, log *slog.Logger) {
	entries, err := os.ReadDir(realNodesRoot)
	if err != nil {
		return
	}
	for _, e := range entries {
		dir := filepath.Join(realNodesRoot, e.Name())
		if !kube.OwnerGone(filepath.Join(dir, "owner")) {
			continue
		}
		var rec nodeRecord
		b, err := os.ReadFile(filepath.Join(dir, "node.json"))
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil {
			// The owner died before writing the record: it started nothing yet.
			_ = os.RemoveAll(dir)
			continue
		}
		log.Info("reclaiming a dead cluster's node", "node", rec.Name, "dir", rec.Dir)
		n := &realNode{name: rec.Name, dir: rec.Dir, sock: rec.Sock, cgroupRoot: rec.CgroupRoot, log: log}
		if err := n.restartContainerd(node); err != nil {
			log.Warn("reclaiming a dead cluster's node: containerd", "node", rec.Name, "err", err)
			killShims(rec.Sock)
		}
		if err := n.close(); err != nil {
			log.Warn("reclaiming a dead cluster's node", "node", rec.Name, "err", err)
		}
		if err := restoreSysctls(rec.Sysctls); err != nil {
			log.Warn("reclaiming a dead cluster's node", "node", rec.Name, "err", err)
		}
		_ = os.RemoveAll(dir)
	}
}

// restartContainerd starts containerd again on the node's configuration, in namespace
// node, and waits for its CRI service.
func (n *realNode) restartContainerd(node *netns.Namespace) error {
	conf := filepath.Join(n.dir, "containerd", "config.toml")
	if _, err := os.Stat(conf); err != nil {
		return fmt.Errorf("no configuration to restart containerd with: %w", err)
	}
	_ = os.Remove(n.sock)
	_ = os.Remove(n.sock + ".ttrpc")
	p, err := startLogged(node, filepath.Join(n.dir, "containerd-reclaim.log"), "containerd", "--config", conf)
	if err != nil {
		return err
	}
	n.containerd = p
	return n.waitRuntime(context.Background())
}

// killShims kills the containerd shims serving the containerd at sock (when containerd
// could not be restarted to remove their containers properly).
func killShims(sock string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == sock {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
}
