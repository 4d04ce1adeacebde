// Command l5d-cluster runs a whole local Kubernetes cluster on this machine (see
// test/localcluster): a control plane on loopback and one node whose pods are processes
// in network namespaces.
//
//	l5d-cluster up -run-dir DIR [-bin-dir DIR]... [-node NAME] [-nodes N] [-cni-plugins DIR] [-kubelet [-image-layout DIR]... [-l5d-images ROOT]]
//	               [-pod-cidr CIDR] [-pod-cidr-v6 CIDR] [-service-cidr CIDR] [-lb-cidr CIDR] [-v]
//
// The -*-cidr flags set the cluster's address plan (localcluster.Addresses), so that a
// second cluster can run beside the first with ranges of its own;
//
//	l5d-cluster connect -run-dir DIR -run-dir DIR
//
// then routes between two running clusters' node namespaces (localcluster.ConnectRunDirs):
// pods of one reach the other's pods, LoadBalancer addresses and API server (NodeIP:6443).
//
// With -kubelet the nodes are real ones (containerd and the kubelet, see
// localcluster.Options.Kubelet), pulling images from a registry on the printed address.
//
// It prints the kubeconfig path and an export line, then runs until SIGINT or SIGTERM and
// removes everything it started (the run directory stays). Needs root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/l5d-go/l5d/test/localcluster"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "l5d-cluster:", err)
		os.Exit(1)
	}
}

// dirList is a repeatable flag.
type dirList []string

func (d *dirList) String() string     { return strings.Join(*d, ",") }
func (d *dirList) Set(s string) error { *d = append(*d, s); return nil }

const usage = `usage: l5d-cluster up -run-dir DIR [-bin-dir DIR]... [-node NAME] [-nodes N] [-cni-plugins DIR] [-kubelet [-image-layout DIR]... [-l5d-images ROOT]]
                      [-pod-cidr CIDR] [-pod-cidr-v6 CIDR] [-service-cidr CIDR] [-lb-cidr CIDR] [-v]
       l5d-cluster connect -run-dir DIR -run-dir DIR`

// connect routes between the two running clusters whose run directories args name.
func connect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("l5d-cluster connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dirs dirList
	fs.Var(&dirs, "run-dir", "run directory of a running cluster (twice)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(dirs) != 2 || fs.NArg() > 0 {
		return fmt.Errorf("connect takes two -run-dir flags and no arguments\n%s", usage)
	}
	if err := localcluster.ConnectRunDirs(dirs[0], dirs[1]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "connected %s and %s\n", dirs[0], dirs[1])
	return nil
}

// prefixFlag is a CIDR flag; unset leaves the zero Prefix (the default range).
type prefixFlag struct{ p *netip.Prefix }

func (f prefixFlag) String() string {
	if f.p == nil || !f.p.IsValid() {
		return ""
	}
	return f.p.String()
}

func (f prefixFlag) Set(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("%q is not a CIDR range such as 10.245.0.0/16", s)
	}
	*f.p = p
	return nil
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "connect" {
		return connect(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "up" {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("l5d-cluster up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runDir := fs.String("run-dir", "", "directory for the kubeconfig, hosts file, logs and pod files (created if missing)")
	var binDirs dirList
	fs.Var(&binDirs, "bin-dir", "directory of executables that images map to by name (repeatable; default: bin/ next to this program)")
	nodeName := fs.String("node", localcluster.DefaultNodeName, "name of the (first) node")
	nodes := fs.Int("nodes", 1, "how many nodes to play (linkerd install --ha needs 3: its replicas must be on different hosts)")
	cniPlugins := fs.String("cni-plugins", "", "directory of the standard CNI plugins (tools/cni-plugins/build.sh prints it): pods' networks come from CNI")
	kubelet := fs.Bool("kubelet", false, "real nodes: containerd and the kubelet, images from the cluster's registry (needs -cni-plugins)")
	var addrs localcluster.Addresses
	fs.Var(prefixFlag{&addrs.PodCIDR}, "pod-cidr", "IPv4 pod network, /16 or wider; the node address is its first (default "+localcluster.ClusterCIDR.String()+")")
	fs.Var(prefixFlag{&addrs.PodCIDRv6}, "pod-cidr-v6", "IPv6 pod network (default fd00:244::/64)")
	fs.Var(prefixFlag{&addrs.ServiceCIDR}, "service-cidr", "Service cluster IP range (default "+localcluster.ServiceCIDR.String()+")")
	fs.Var(prefixFlag{&addrs.LoadBalancerCIDR}, "lb-cidr", "range LoadBalancer Services get their address from (default "+localcluster.LoadBalancerCIDR.String()+")")
	var layouts dirList
	fs.Var(&layouts, "image-layout", "with -kubelet, an OCI image layout (make images: bin/images/oci) whose images are pushed to the cluster's registry (repeatable)")
	l5dImages := fs.String("l5d-images", "", "with -kubelet, the repository root: build every l5d image from its bin/ (tagged as its bin/linkerd's version) and push them")
	verbose := fs.Bool("v", false, "log debug messages")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q\n%s", fs.Args(), usage)
	}
	if *runDir == "" {
		return fmt.Errorf("-run-dir is required\n%s", usage)
	}
	if len(binDirs) == 0 {
		if exe, err := os.Executable(); err == nil {
			binDirs = dirList{filepath.Dir(exe)}
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("starting the cluster", "runDir", *runDir, "binDirs", []string(binDirs))
	c, err := localcluster.Up(ctx, localcluster.Options{
		RunDir: *runDir, BinDirs: binDirs, NodeName: *nodeName, Nodes: *nodes, Logger: log,
		CNIPlugins: *cniPlugins, Kubelet: *kubelet, Addresses: addrs, ImageLayouts: layouts, L5DImages: *l5dImages,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kubeconfig: %s\nexport KUBECONFIG=%s\n", c.Kubeconfig(), c.Kubeconfig())
	fmt.Fprintf(stdout, "# pods reach the API server at %s; hosts file %s; kube-proxy log %s\n",
		c.APIServerAddr(), c.HostsFile(), c.KubeProxyLog())
	if *kubelet {
		fmt.Fprintf(stdout, "# image registry: push to %s; pods name the images ghcr.io/<repo>:<tag> (also docker.io, registry.k8s.io)\n", c.RegistryHost())
	}
	select {
	case <-ctx.Done():
		log.Info("stopping the cluster")
	case <-c.Done():
		log.Error("the node stopped", "err", c.Err())
	}
	return c.Close()
}
