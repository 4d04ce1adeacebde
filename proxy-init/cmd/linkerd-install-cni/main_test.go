package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/l5d-go/l5d/pkg/eventually"
)

// node is a fake node's CNI directories and a service account's files, all in a temporary
// directory, and the installer running on them.
type node struct {
	netDir, binDir, tokenDir string
	cmd                      *exec.Cmd
	log                      *syncBuffer
}

// syncBuffer is the installer's stderr, read while the process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const bridgeConflist = `{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/16"}]]}},{"type":"portmap","capabilities":{"portMappings":true}}]}`

const networkConfig = `{"name":"linkerd-cni","type":"linkerd-cni","log_level":"info","kubernetes":{"kubeconfig":"__KUBECONFIG_FILEPATH__"},"linkerd":{"incoming-proxy-port":4143,"outgoing-proxy-port":4140,"proxy-uid":2102,"inbound-ports-to-ignore":["4190","4191"],"iptables-mode":"legacy"}}`

func build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []struct{ out, pkg string }{{"linkerd-install-cni", "."}, {"linkerd-cni", "../linkerd-cni"}} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg).CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b.pkg, err, out)
		}
	}
	return dir
}

func start(t *testing.T, bin string, primary map[string]string) *node {
	t.Helper()
	root := t.TempDir()
	n := &node{netDir: filepath.Join(root, "net.d"), binDir: filepath.Join(root, "bin"), tokenDir: filepath.Join(root, "sa"), log: &syncBuffer{}}
	for _, d := range []string{n.netDir, n.binDir, n.tokenDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(n.tokenDir, "token"), "token-1")
	write(t, filepath.Join(n.tokenDir, "ca.crt"), "not checked by the installer")
	for name, text := range primary {
		write(t, filepath.Join(n.netDir, name), text)
	}
	n.cmd = exec.Command(filepath.Join(bin, "linkerd-install-cni"),
		"--net-dir", n.netDir, "--host-net-dir", "/etc/cni/net.d", "--bin-dir", n.binDir,
		"--token-dir", n.tokenDir, "--api-host", "10.96.0.1", "--api-port", "443",
		"--network-config", networkConfig, "--resync", "50ms")
	n.cmd.Stderr = n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n.cmd.ProcessState == nil {
			n.cmd.Process.Kill()
			n.cmd.Wait()
		}
	})
	return n
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// types returns the plugin types of the configuration file at path, or nil.
func types(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var conf struct {
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if json.Unmarshal(data, &conf) != nil {
		return nil
	}
	var out []string
	for _, p := range conf.Plugins {
		out = append(out, p.Type)
	}
	return out
}

func TestInstallerChainsThePluginAndKeepsItThere(t *testing.T) {
	bin := build(t)
	n := start(t, bin, map[string]string{"10-bridge.conflist": bridgeConflist, "99-other.conf": `{"type":"other"}`})
	conf := filepath.Join(n.netDir, "10-bridge.conflist")
	want := []string{"bridge", "portmap", "linkerd-cni"}
	eventually.True(t, "linkerd-cni is chained last in the primary configuration", func() bool { return slices.Equal(types(conf), want) })
	if got := types(filepath.Join(n.netDir, "99-other.conf")); got != nil {
		t.Errorf("a configuration that is not the primary was changed: %v", got)
	}
	plugin, _ := os.ReadFile(filepath.Join(bin, "linkerd-cni"))
	eventually.True(t, "the plugin binary is installed", func() bool {
		got, _ := os.ReadFile(filepath.Join(n.binDir, "linkerd-cni"))
		return bytes.Equal(got, plugin)
	})
	text, _ := os.ReadFile(conf)
	if !strings.Contains(string(text), `"kubeconfig": "/etc/cni/net.d/ZZZ-linkerd-cni-kubeconfig"`) {
		t.Errorf("the chained configuration does not name the kubeconfig's path on the node:\n%s", text)
	}
	kubeconfig := filepath.Join(n.netDir, "ZZZ-linkerd-cni-kubeconfig")
	token := func() string {
		cfg, err := clientcmd.LoadFromFile(kubeconfig)
		if err != nil || cfg.AuthInfos[cfg.Contexts[cfg.CurrentContext].AuthInfo] == nil {
			return ""
		}
		if s := cfg.Clusters["local"].Server; s != "https://10.96.0.1:443" {
			t.Errorf("kubeconfig server %q", s)
		}
		return cfg.AuthInfos[cfg.Contexts[cfg.CurrentContext].AuthInfo].Token
	}
	eventually.True(t, "the kubeconfig holds the token", func() bool { return token() == "token-1" })

	// The primary plugin rewrites its configuration; the token is rotated.
	write(t, conf, bridgeConflist)
	write(t, filepath.Join(n.tokenDir, "token"), "token-2")
	eventually.True(t, "linkerd-cni is chained again", func() bool { return slices.Equal(types(conf), want) })
	eventually.True(t, "the kubeconfig holds the new token", func() bool { return token() == "token-2" })

	// Stopping takes the plugin out and removes its files.
	n.cmd.Process.Signal(syscall.SIGTERM)
	if err := n.cmd.Wait(); err != nil {
		t.Fatalf("installer: %v\n%s", err, n.log)
	}
	if got := types(conf); !slices.Equal(got, []string{"bridge", "portmap"}) {
		t.Errorf("after stopping, the configuration has plugins %v", got)
	}
	for _, p := range []string{kubeconfig, filepath.Join(n.binDir, "linkerd-cni")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("after stopping, %s is still there (%v)", p, err)
		}
	}
}

func TestInstallerWaitsForThePrimaryAndConvertsASingleConf(t *testing.T) {
	bin := build(t)
	n := start(t, bin, nil)
	eventually.True(t, "the installer says it waits", func() bool {
		return strings.Contains(n.log.String(), "waiting for the primary CNI plugin")
	})
	write(t, filepath.Join(n.netDir, "10-bridge.conf"), `{"cniVersion":"0.4.0","name":"pods","type":"bridge","bridge":"cni0"}`)
	list := filepath.Join(n.netDir, "10-bridge.conflist")
	eventually.True(t, "the single .conf becomes a .conflist ending with linkerd-cni", func() bool {
		return slices.Equal(types(list), []string{"bridge", "linkerd-cni"})
	})
	if _, err := os.Stat(filepath.Join(n.netDir, "10-bridge.conf")); !os.IsNotExist(err) {
		t.Errorf("the .conf is still there next to its .conflist (%v)", err)
	}
}

func TestInstallerRefusesBadFlags(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--network-config", ""}, "--network-config"},
		{[]string{"--network-config", `{"type":"bridge"}`}, `"type"`},
		{[]string{"--network-config", strings.Replace(networkConfig, `"legacy"`, `"ebpf"`, 1)}, "linkerd.iptables-mode"},
	} {
		cmd := exec.Command(filepath.Join(bin, "linkerd-install-cni"), append([]string{"--api-host", "h", "--api-port", "1"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); err == nil || code != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%q: exit %d, want 2 naming %s: %s", tc.args, code, tc.want, out)
		}
	}
}
