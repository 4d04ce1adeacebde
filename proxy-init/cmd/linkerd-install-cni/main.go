// Command linkerd-install-cni is the container of the linkerd-cni DaemonSet. On its node it
// copies the linkerd-cni plugin into the CNI binary directory, writes a kubeconfig with the
// DaemonSet's service account token for the plugin to read pods with, and adds the plugin,
// configured from --network-config, at the end of the primary network configuration's
// plugin list. It then checks all three every --resync and puts back whatever changed (the
// primary plugin rewriting its configuration, a rotated token, a new plugin binary). On
// SIGTERM or SIGINT it takes the plugin out of the configuration and removes its files.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/l5d-go/l5d/pkg/logging"
	"github.com/l5d-go/l5d/proxy-init/cni"
	"github.com/l5d-go/l5d/proxy-init/cni/chain"
)

// KubeconfigPlaceholder in --network-config is replaced with the kubeconfig's path on the
// node, as in Linkerd's configuration template.
const KubeconfigPlaceholder = "__KUBECONFIG_FILEPATH__"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command's flags.
type options struct {
	netDir, hostNetDir, binDir, plugin string
	networkConfig, kubeconfigName      string
	tokenDir, apiHost, apiPort         string
	resync                             time.Duration
}

// run is the command; it returns 0 after a clean stop, 1 on failure, 2 for bad flags.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("linkerd-install-cni", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	self, _ := os.Executable()
	fs.StringVar(&o.netDir, "net-dir", "/host/etc/cni/net.d", "the node's CNI configuration directory, as mounted in this container")
	fs.StringVar(&o.hostNetDir, "host-net-dir", envOr("DEST_CNI_NET_DIR", "/etc/cni/net.d"), "the same directory as the node sees it (the plugin's kubeconfig path is written in it)")
	fs.StringVar(&o.binDir, "bin-dir", "/host/opt/cni/bin", "the node's CNI binary directory, as mounted in this container")
	fs.StringVar(&o.plugin, "plugin", filepath.Join(filepath.Dir(self), cni.PluginType), "the linkerd-cni binary to install")
	fs.StringVar(&o.networkConfig, "network-config", os.Getenv("CNI_NETWORK_CONFIG"), "the plugin's configuration (JSON; "+KubeconfigPlaceholder+" stands for the kubeconfig's path)")
	fs.StringVar(&o.kubeconfigName, "kubeconfig-name", envOr("KUBECONFIG_FILE_NAME", "ZZZ-linkerd-cni-kubeconfig"), "file name of the plugin's kubeconfig in the configuration directory")
	fs.StringVar(&o.tokenDir, "token-dir", "/var/run/secrets/kubernetes.io/serviceaccount", "the service account's token and ca.crt")
	fs.StringVar(&o.apiHost, "api-host", os.Getenv("KUBERNETES_SERVICE_HOST"), "API server host the plugin connects to")
	fs.StringVar(&o.apiPort, "api-port", os.Getenv("KUBERNETES_SERVICE_PORT"), "API server port the plugin connects to")
	fs.DurationVar(&o.resync, "resync", 5*time.Second, "how often the files are checked and put back")
	logCfg := logging.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log, err := logCfg.New(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "linkerd-install-cni: %v\n", err)
		return 2
	}
	plugin, err := o.check()
	if err != nil {
		fmt.Fprintf(stderr, "linkerd-install-cni: %v\n", err)
		return 2
	}
	if err := loop(ctx, o, plugin, log); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// check validates the flags and returns the plugin's configuration.
func (o options) check() (map[string]any, error) {
	switch {
	case o.networkConfig == "":
		return nil, errors.New("--network-config (or CNI_NETWORK_CONFIG) is empty: it is the plugin's configuration")
	case o.apiHost == "" || o.apiPort == "":
		return nil, errors.New("--api-host and --api-port (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT) must be set")
	case o.resync <= 0:
		return nil, fmt.Errorf("--resync %v: must be positive", o.resync)
	case strings.ContainsRune(o.kubeconfigName, '/'):
		return nil, fmt.Errorf("--kubeconfig-name %q: must be a file name", o.kubeconfigName)
	}
	text := strings.ReplaceAll(o.networkConfig, KubeconfigPlaceholder, filepath.Join(o.hostNetDir, o.kubeconfigName))
	plugin := map[string]any{}
	if err := json.Unmarshal([]byte(text), &plugin); err != nil {
		return nil, fmt.Errorf("--network-config is not a JSON object: %w", err)
	}
	if plugin["type"] != cni.PluginType {
		return nil, fmt.Errorf("--network-config: \"type\" is %v, want %q", plugin["type"], cni.PluginType)
	}
	// The configuration must be one the plugin accepts.
	if _, err := cni.Parse([]byte(text)); err != nil {
		return nil, fmt.Errorf("--network-config: %w", err)
	}
	return plugin, nil
}

// loop installs and keeps the files until ctx ends, then removes them.
func loop(ctx context.Context, o options, plugin map[string]any, log *slog.Logger) error {
	waiting := false
	t := time.NewTicker(o.resync)
	defer t.Stop()
	for {
		err := reconcile(o, plugin, log)
		switch {
		case errors.Is(err, chain.ErrNoPrimary):
			if !waiting {
				log.Info("waiting for the primary CNI plugin's configuration", "dir", o.netDir)
			}
			waiting = true
		case err != nil:
			log.Error("installing the plugin", "err", err)
		default:
			waiting = false
		}
		select {
		case <-ctx.Done():
			return uninstall(o, log)
		case <-t.C:
		}
	}
}

// reconcile puts the binary, the kubeconfig and the chained configuration in place.
func reconcile(o options, plugin map[string]any, log *slog.Logger) error {
	bin, err := os.ReadFile(o.plugin)
	if err != nil {
		return fmt.Errorf("reading the plugin binary: %w", err)
	}
	if changed, err := ensure(filepath.Join(o.binDir, cni.PluginType), bin, 0o755); err != nil {
		return err
	} else if changed {
		log.Info("installed the plugin binary", "path", filepath.Join(o.binDir, cni.PluginType))
	}
	kc, err := kubeconfig(o)
	if err != nil {
		return err
	}
	if changed, err := ensure(filepath.Join(o.netDir, o.kubeconfigName), kc, 0o600); err != nil {
		return err
	} else if changed {
		log.Info("wrote the plugin's kubeconfig", "path", filepath.Join(o.hostNetDir, o.kubeconfigName))
	}
	path, err := chain.Insert(o.netDir, plugin)
	if err != nil {
		return err
	}
	if path != "" {
		log.Info("added linkerd-cni to the network configuration", "file", path)
	}
	return nil
}

// ensure writes data to path unless it already holds it; it reports whether it wrote.
func ensure(path string, data []byte, mode os.FileMode) (bool, error) {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return false, nil
	}
	return true, chain.WriteFile(path, data, mode)
}

// kubeconfig renders the plugin's kubeconfig: the API server, its CA and the token.
func kubeconfig(o options) ([]byte, error) {
	token, err := os.ReadFile(filepath.Join(o.tokenDir, "token"))
	if err != nil {
		return nil, fmt.Errorf("reading the service account token: %w", err)
	}
	ca, err := os.ReadFile(filepath.Join(o.tokenDir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("reading the API server's CA: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{
		Server:                   "https://" + net.JoinHostPort(o.apiHost, o.apiPort),
		CertificateAuthorityData: ca,
	}
	cfg.AuthInfos["linkerd-cni"] = &clientcmdapi.AuthInfo{Token: strings.TrimSpace(string(token))}
	cfg.Contexts["linkerd-cni"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "linkerd-cni"}
	cfg.CurrentContext = "linkerd-cni"
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding the kubeconfig: %w", err)
	}
	return out, nil
}

// uninstall takes the plugin out of the configuration and removes its files.
func uninstall(o options, log *slog.Logger) error {
	var errs []error
	if path, err := chain.Remove(o.netDir, cni.PluginType); err != nil {
		errs = append(errs, err)
	} else if path != "" {
		log.Info("removed linkerd-cni from the network configuration", "file", path)
	}
	for _, p := range []string{filepath.Join(o.netDir, o.kubeconfigName), filepath.Join(o.binDir, cni.PluginType)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
