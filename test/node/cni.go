package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/l5d-go/l5d/test/netns"
)

// CNI makes the agent set up pods' networks as a container runtime does, with the node's
// CNI configuration instead of test/netns's own veth: for each pod it makes a bare network
// namespace, runs the loopback plugin and then the network of the first file (in lexical
// order) among ConfDir's *.conf, *.conflist and *.json, read afresh for every pod, with
// ADD; when the pod goes, DEL, in the reverse order. Plugins run in the node's network
// namespace (Network.Node), as the runtime runs them on the node, with K8S_POD_NAMESPACE,
// K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID and K8S_POD_UID in CNI_ARGS. The pod's IPs are
// those of the result's eth0 addresses.
type CNI struct {
	// ConfDir is the node's CNI configuration directory (/etc/cni/net.d on a node).
	ConfDir string
	// BinDirs are searched for the plugins (/opt/cni/bin on a node).
	BinDirs []string
	// CacheDir keeps each attachment's configuration and result for DEL
	// (/var/lib/cni on a node).
	CacheDir string
}

// BridgeNetworkName is the name of the network BridgeNetwork describes.
const BridgeNetworkName = "l5d-pods"

// BridgeNetwork returns a node's primary CNI network (a .conflist) on the test/netns
// bridge of a Network with pod ranges r: the standard bridge plugin attaches pods to br0,
// which already holds the gateway address, and host-local hands out x.y.128.2-x.y.191.254
// of r.V4 (10.244.128.2-10.244.191.254 with netns.DefaultRanges), a part of the pod network
// test/netns's own pods never reach, keeping its leases in ipamDir.
func BridgeNetwork(ipamDir string, r netns.Ranges) string {
	base := r.V4.Addr().As4()
	start, end := base, base
	start[2], start[3] = 128, 2
	end[2], end[3] = 191, 254
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [{
    "type": "bridge",
    "bridge": "br0",
    "isGateway": false,
    "ipam": {
      "type": "host-local",
      "dataDir": %q,
      "ranges": [[{"subnet": %q, "rangeStart": %q, "rangeEnd": %q, "gateway": %q}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}
`, BridgeNetworkName, ipamDir, r.V4.String(), netip.AddrFrom4(start).String(), netip.AddrFrom4(end).String(), r.GatewayV4().String())
}

// podIfName is the pod's interface, as the kubelet names it.
const podIfName = "eth0"

// cniRuntime runs the node's CNI configuration.
type cniRuntime struct {
	cfg *CNI
	lib *libcni.CNIConfig
}

func newCNIRuntime(cfg *CNI, node *netns.Namespace) *cniRuntime {
	return &cniRuntime{cfg: cfg, lib: libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, nodeExec{node})}
}

// networks returns the loopback network and the node's pod network.
func (r *cniRuntime) networks() ([]*libcni.NetworkConfigList, error) {
	lo, err := libcni.NetworkConfFromBytes([]byte(`{"cniVersion":"1.0.0","name":"cni-loopback","plugins":[{"type":"loopback"}]}`))
	if err != nil {
		return nil, fmt.Errorf("the loopback network: %w", err)
	}
	files, err := libcni.ConfFiles(r.cfg.ConfDir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, fmt.Errorf("reading the CNI configuration directory: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no network configuration in %s: the network plugin is not ready", r.cfg.ConfDir)
	}
	first := files[0] // ConfFiles keeps ReadDir's lexical order
	var list *libcni.NetworkConfigList
	if filepath.Ext(first) == ".conflist" {
		list, err = libcni.NetworkConfFromFile(first)
	} else {
		list, err = singlePluginList(first)
	}
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", first, err)
	}
	return []*libcni.NetworkConfigList{lo, list}, nil
}

// singlePluginList reads a one-plugin .conf (or .json) file as the list of that plugin,
// as runtimes still accept them: its name and cniVersion become the list's.
func singlePluginList(path string) (*libcni.NetworkConfigList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	plugin := map[string]any{}
	if err := json.Unmarshal(data, &plugin); err != nil {
		return nil, fmt.Errorf("%s is not a JSON object: %w", path, err)
	}
	list, err := json.Marshal(map[string]any{"cniVersion": plugin["cniVersion"], "name": plugin["name"], "plugins": []any{plugin}})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(list)
}

// add runs ADD for every network and returns the pod's addresses. On failure, what was
// added is deleted again.
func (r *cniRuntime) add(ctx context.Context, rt *libcni.RuntimeConf) (v4, v6 netip.Addr, err error) {
	nets, err := r.networks()
	if err != nil {
		return v4, v6, err
	}
	for i, n := range nets {
		res, err := r.lib.AddNetworkList(ctx, n, rt)
		if err != nil {
			err = fmt.Errorf("plugin type=%q failed (add): %w", pluginTypes(n), err)
			for j := i; j >= 0; j-- {
				err = errors.Join(err, r.lib.DelNetworkList(ctx, nets[j], rt))
			}
			return v4, v6, err
		}
		if i == 0 {
			continue
		}
		cur, err := current.NewResultFromResult(res)
		if err != nil {
			return v4, v6, fmt.Errorf("the result of network %s: %w", n.Name, err)
		}
		for _, ip := range cur.IPs {
			a, ok := netip.AddrFromSlice(ip.Address.IP)
			if !ok {
				continue
			}
			a = a.Unmap()
			if a.Is4() && !v4.IsValid() {
				v4 = a
			} else if a.Is6() && !v6.IsValid() {
				v6 = a
			}
		}
	}
	if !v4.IsValid() && !v6.IsValid() {
		return v4, v6, errors.New("the pod network's result has no IP address")
	}
	return v4, v6, nil
}

// del runs DEL for every network, the pod network first, with the configuration cached at
// ADD when there is one (the directory may have changed since).
func (r *cniRuntime) del(ctx context.Context, rt *libcni.RuntimeConf) error {
	nets, err := r.networks()
	if err != nil {
		return err
	}
	var errs []error
	for i := len(nets) - 1; i >= 0; i-- {
		n := nets[i]
		if cached, _, err := r.lib.GetNetworkListCachedConfig(n, rt); err == nil && cached != nil {
			if c, err := libcni.NetworkConfFromBytes(cached); err == nil {
				n = c
			}
		}
		if err := r.lib.DelNetworkList(ctx, n, rt); err != nil {
			errs = append(errs, fmt.Errorf("plugin type=%q failed (delete): %w", pluginTypes(n), err))
		}
	}
	return errors.Join(errs...)
}

func pluginTypes(n *libcni.NetworkConfigList) string {
	var ts []string
	for _, p := range n.Plugins {
		ts = append(ts, p.Network.Type)
	}
	return strings.Join(ts, ",")
}

// nodeExec runs plugins in the node's network namespace.
type nodeExec struct{ node *netns.Namespace }

// ExecPlugin runs the plugin with the CNI environment and configuration; a failure is the
// plugin's CNI error when it printed one.
func (e nodeExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := e.node.Run(cmd); err != nil {
		var cniErr types.Error
		if json.Unmarshal(out.Bytes(), &cniErr) == nil && cniErr.Msg != "" {
			return nil, &cniErr
		}
		return nil, fmt.Errorf("%s: %w: %s", filepath.Base(path), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// FindInPath finds the plugin's binary in paths.
func (nodeExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// Decode reads a plugin's VERSION answer.
func (nodeExec) Decode(b []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(b)
}

// addNetwork makes the pod's network namespace: test/netns's own veth, or with Config.CNI
// the node's CNI networks. A CNI failure is shown in the pod's status, as the kubelet
// shows a sandbox that cannot be created, and retried with backoff until ctx ends; ok is
// false then, or when the namespace cannot be made at all.
func (w *podWorker) addNetwork(ctx context.Context) (*netns.Pod, bool) {
	if w.a.cni == nil {
		p, err := w.a.cfg.Network.AddPod(w.name)
		if err != nil {
			w.log.Error("making the pod's network namespace", "error", err)
			return nil, false
		}
		return p, true
	}
	for delay := 500 * time.Millisecond; ; delay = min(delay*2, 10*time.Second) {
		p, err := w.a.cfg.Network.AddBarePod(w.name)
		if err != nil {
			w.log.Error("making the pod's network namespace", "error", err)
			return nil, false
		}
		v4, v6, err := w.a.cni.add(ctx, w.runtimeConf(p))
		if err == nil {
			p.IPv4, p.IPv6, p.Interface = v4, v6, podIfName
			return p, true
		}
		err = fmt.Errorf("failed to set up sandbox network: %w", err)
		w.log.Warn("setting up the pod's network", "error", err)
		w.setWaiting("ContainerCreating", err.Error())
		if rerr := w.a.cfg.Network.RemovePod(w.name); rerr != nil {
			w.log.Error("removing the pod's network namespace", "error", rerr)
			return nil, false
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(delay):
		}
	}
}

// removeNetwork runs the CNI networks' DEL (with Config.CNI) and removes the namespace.
func (w *podWorker) removeNetwork(p *netns.Pod) error {
	var err error
	if w.a.cni != nil && p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = w.a.cni.del(ctx, w.runtimeConf(p))
		cancel()
	}
	return errors.Join(err, w.a.cfg.Network.RemovePod(w.name))
}

// runtimeConf is what the runtime passes the plugins for this pod's sandbox.
func (w *podWorker) runtimeConf(p *netns.Pod) *libcni.RuntimeConf {
	pod := w.current()
	return &libcni.RuntimeConf{
		ContainerID: w.name,
		NetNS:       p.Path(),
		IfName:      podIfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", w.name},
			{"K8S_POD_UID", string(pod.UID)},
		},
	}
}
