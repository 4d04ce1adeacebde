package localcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/netns"
	"github.com/l5d-go/l5d/test/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PauseImage is the pod sandbox image of the real nodes' containerd (sandbox_image): the
// program of internal/pause, pushed to the cluster's registry at Up.
const PauseImage = "registry.k8s.io/pause:3.10"

// KubeletPort is the first real node's kubelet API port on NodeIP; node i (0-based) uses
// KubeletPort+i, since all nodes share the node namespace.
const KubeletPort = 10250

// nodeStartTimeout bounds how long a real node may take to register and become Ready on a
// loaded machine.
const nodeStartTimeout = 3 * time.Minute

// realNodeSeq tells apart the cgroup roots of clusters started by one process.
var realNodeSeq atomic.Int64

// realNode is one Kubernetes node made of Debian's containerd (with runc) and the real
// kubelet, both in the node namespace, with their state under dir.
type realNode struct {
	name       string
	dir        string
	sock       string // containerd's CRI socket
	cgroupRoot string // the kubelet's --cgroup-root, e.g. /l5d-123-1-l5d-node
	containerd *netns.Process
	kubelet    *netns.Process
	log        *slog.Logger
	recordDir  string // this node's record for reclaimDeadNodes, removed by close
}

// realNodeConfig is what startRealNode needs from the cluster.
type realNodeConfig struct {
	name      string
	index     int // port offset
	runDir    string
	kube      *kube.Cluster
	apiServer string // https://NodeIP:port, reachable from the node namespace
	node      *netns.Namespace
	cniConf   string
	cniBin    string
	runtime   string            // the OCI runtime binary (runc)
	sysctls   map[string]string // the host's kernel settings before the first kubelet
	log       *slog.Logger
}

// startRealNode starts containerd and then the kubelet for Node cfg.name, registering with
// a client certificate for system:node:<name>. It returns once containerd answers; the
// caller waits for the Node to become Ready (waitNodeReady).
func startRealNode(ctx context.Context, cfg realNodeConfig) (_ *realNode, err error) {
	n := &realNode{
		name:       cfg.name,
		dir:        filepath.Join(cfg.runDir, "nodes", cfg.name),
		cgroupRoot: fmt.Sprintf("/l5d-%d-%d-%s", os.Getpid(), realNodeSeq.Add(1), cfg.name),
		log:        cfg.log,
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.close())
		}
	}()
	for _, d := range []string{"containerd/root", "containerd/state", "kubelet", "pod-logs", "certs.d"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("localcluster: node %s: %w", cfg.name, err)
		}
	}
	n.sock = filepath.Join(n.dir, "containerd", "containerd.sock")
	if len(n.sock)+len(".ttrpc") > maxUnixSocketPath {
		d, err := os.MkdirTemp("", "l5dn-")
		if err != nil {
			return nil, fmt.Errorf("localcluster: node %s: a directory for containerd's socket: %w", cfg.name, err)
		}
		n.sock = filepath.Join(d, "containerd.sock")
	}
	if err := registry.WriteHosts(filepath.Join(n.dir, "certs.d"), netip.AddrPortFrom(NodeIP, RegistryPort).String(), MirroredRegistries); err != nil {
		return nil, err
	}
	conf := filepath.Join(n.dir, "containerd", "config.toml")
	if err := os.WriteFile(conf, []byte(n.containerdConfig(cfg)), 0o644); err != nil {
		return nil, fmt.Errorf("localcluster: node %s: writing containerd's configuration: %w", cfg.name, err)
	}
	if n.recordDir, err = n.record(cfg.sysctls); err != nil {
		return nil, err
	}
	if n.containerd, err = startLogged(cfg.node, filepath.Join(cfg.runDir, "logs", "containerd-"+cfg.name+".log"),
		"containerd", "--config", conf); err != nil {
		return nil, fmt.Errorf("localcluster: node %s: starting containerd: %w", cfg.name, err)
	}
	if err := n.waitRuntime(ctx); err != nil {
		return nil, err
	}

	if err := n.makeCgroupRoot(); err != nil {
		return nil, err
	}
	kubeconfig, err := n.writeKubeconfig(cfg)
	if err != nil {
		return nil, err
	}
	resolv := filepath.Join(n.dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+DNSAddr.Addr().String()+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("localcluster: node %s: writing resolv.conf: %w", cfg.name, err)
	}
	kcfg := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(kcfg, []byte(n.kubeletConfig(cfg, resolv)), 0o644); err != nil {
		return nil, fmt.Errorf("localcluster: node %s: writing the kubelet configuration: %w", cfg.name, err)
	}
	if n.kubelet, err = startLogged(cfg.node, filepath.Join(cfg.runDir, "logs", "kubelet-"+cfg.name+".log"),
		filepath.Join(kube.BinDir(), "kubelet"),
		"--config="+kcfg,
		"--kubeconfig="+kubeconfig,
		"--root-dir="+filepath.Join(n.dir, "kubelet"),
		"--cert-dir="+filepath.Join(n.dir, "kubelet", "pki"),
		"--hostname-override="+cfg.name,
		"--node-ip="+NodeIP.String(),
		"--pod-infra-container-image="+PauseImage,
		"--v=2",
	); err != nil {
		return nil, fmt.Errorf("localcluster: node %s: starting the kubelet: %w", cfg.name, err)
	}
	return n, nil
}

// startLogged starts argv in the node namespace with its output appended to logPath.
func startLogged(node *netns.Namespace, logPath string, argv ...string) (*netns.Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", logPath, err)
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	return node.Start(cmd)
}

// containerdConfig is containerd 1.6's configuration (version 2) for this node: its own
// root, state and sockets, runc with cgroupfs (the kubelet's driver), the node's CNI
// directories and the registry mirrors. restrict_oom_score_adj keeps containers' OOM score
// adjustments at or above containerd's own: without CAP_SYS_RESOURCE (this machine's
// sandbox drops it) runc cannot lower the sandbox's to -998 and fails with "can't get final
// child's PID from pipe: EOF" (its nsexec: "failed to update /proc/self/oom_score_adj:
// Permission denied").
func (n *realNode) containerdConfig(cfg realNodeConfig) string {
	d := filepath.Join(n.dir, "containerd")
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  enable_selinux = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = %[7]q
        Root = %[8]q
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[9]q
    conf_dir = %[10]q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[11]q
`, filepath.Join(d, "root"), filepath.Join(d, "state"), n.sock, n.sock+".ttrpc", filepath.Join(d, "opt"),
		PauseImage, cfg.runtime, filepath.Join(d, "state", "runc"), cfg.cniBin, cfg.cniConf, filepath.Join(n.dir, "certs.d"))
}

// kubeletConfig is the KubeletConfiguration: cgroup v1 with the cgroupfs driver under a
// cgroup root of this node's own, the API authenticated by client certificates of the
// cluster CA and tokens, authorized by the API server (SubjectAccessReview), pod logs and
// state under the node directory, and no eviction thresholds that a shared disk could
// trip.
func (n *realNode) kubeletConfig(cfg realNodeConfig, resolv string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %[1]q
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
containerRuntimeEndpoint: %[2]q
address: %[3]q
port: %[4]d
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[5]q
authorization:
  mode: Webhook
clusterDNS: [%[6]q]
clusterDomain: %[7]q
resolvConf: %[8]q
podLogsDir: %[9]q
failSwapOn: false
protectKernelDefaults: false
serializeImagePulls: false
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
shutdownGracePeriod: 0s
`, n.cgroupRoot, "unix://"+n.sock, NodeIP.String(), KubeletPort+cfg.index, filepath.Join(n.dir, "ca.crt"),
		DNSAddr.Addr().String(), ClusterDomain, resolv, filepath.Join(n.dir, "pod-logs"))
}

// writeKubeconfig writes the kubelet's kubeconfig (the API server through the node
// namespace's relay, a client certificate for system:node:<name> in system:nodes) and the
// cluster CA the kubelet authenticates its API's clients with.
func (n *realNode) writeKubeconfig(cfg realNodeConfig) (string, error) {
	certPEM, keyPEM, err := cfg.kube.IssueClientCertificate("system:node:"+cfg.name, "system:nodes")
	if err != nil {
		return "", fmt.Errorf("localcluster: node %s: %w", cfg.name, err)
	}
	if err := os.WriteFile(filepath.Join(n.dir, "ca.crt"), cfg.kube.CA(), 0o644); err != nil {
		return "", fmt.Errorf("localcluster: node %s: writing the CA: %w", cfg.name, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: cfg.apiServer, CertificateAuthorityData: cfg.kube.CA()}
	kc.AuthInfos["kubelet"] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	kc.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "kubelet"}
	kc.CurrentContext = "local"
	path := filepath.Join(n.dir, "kubelet.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return "", fmt.Errorf("localcluster: node %s: writing the kubelet's kubeconfig: %w", cfg.name, err)
	}
	return path, nil
}

// cgroupHierarchies are the cgroup v1 mount points under /sys/fs/cgroup.
func cgroupHierarchies() ([]string, error) {
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil, fmt.Errorf("localcluster: listing cgroup hierarchies: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "unified" {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return dirs, nil
}

// makeCgroupRoot creates the kubelet's cgroup root in every hierarchy.
func (n *realNode) makeCgroupRoot() error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		if err := os.MkdirAll(filepath.Join(h, n.cgroupRoot), 0o755); err != nil {
			return fmt.Errorf("localcluster: node %s: creating cgroup %s: %w", n.name, n.cgroupRoot, err)
		}
	}
	return nil
}

// criClient connects to containerd's CRI socket.
func (n *realNode) criClient() (cri.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient("unix://"+n.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("localcluster: node %s: connecting to containerd: %w", n.name, err)
	}
	return cri.NewRuntimeServiceClient(conn), func() { conn.Close() }, nil
}

// waitRuntime waits until containerd's CRI service answers and reports the runtime ready.
func (n *realNode) waitRuntime(ctx context.Context) error {
	client, done, err := n.criClient()
	if err != nil {
		return err
	}
	defer done()
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case <-n.containerd.Done():
			return false, errors.New("containerd exited")
		default:
		}
		st, err := client.Status(ctx, &cri.StatusRequest{})
		if err != nil {
			last = err
			return false, nil
		}
		for _, c := range st.GetStatus().GetConditions() {
			if c.Type == cri.RuntimeReady && !c.Status {
				last = fmt.Errorf("runtime not ready: %s", c.Message)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("localcluster: node %s: containerd did not become ready (%v): %w", n.name, last, err)
	}
	return nil
}

// waitNodeReady waits until Node name is registered and Ready, or the kubelet exits.
func waitNodeReady(ctx context.Context, client kubernetes.Interface, n *realNode) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, nodeStartTimeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-n.kubelet.Done():
			return false, errors.New("the kubelet exited")
		case <-n.containerd.Done():
			return false, errors.New("containerd exited")
		default:
		}
		node, err := client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				last = fmt.Sprintf("Ready=%s: %s", c.Status, c.Message)
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		last = "no Ready condition yet"
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("localcluster: node %s did not become Ready (%s; see logs/kubelet-%s.log): %w", n.name, last, n.name, err)
	}
	return nil
}

// close stops the kubelet, then every pod sandbox through the CRI (containers, network
// teardown through CNI, the sandbox's mounts), then containerd; it then unmounts whatever
// is still mounted under the node directory and removes the node's cgroups.
func (n *realNode) close() error {
	var errs []error
	if n.kubelet != nil {
		errs = append(errs, ignoreKilled(n.kubelet.Kill()))
	}
	if n.containerd != nil {
		select {
		case <-n.containerd.Done():
		default:
			errs = append(errs, n.removeSandboxes())
		}
		errs = append(errs, ignoreKilled(n.containerd.Kill()))
	}
	if filepath.IsAbs(n.dir) && filepath.Base(filepath.Dir(n.dir)) == "nodes" {
		errs = append(errs, unmountUnder(n.dir))
	} else {
		errs = append(errs, fmt.Errorf("localcluster: node %s: refusing to unmount under %q, not a node directory", n.name, n.dir))
	}
	errs = append(errs, n.removeCgroups(), n.removeLogLinks())
	// The socket's own directory under /tmp (see startRealNode), never anything else.
	if sockDir := filepath.Dir(n.sock); n.sock != "" && !strings.HasPrefix(n.sock, n.dir+"/") && strings.HasPrefix(filepath.Base(sockDir), "l5dn-") {
		errs = append(errs, os.RemoveAll(sockDir))
	}
	if n.recordDir != "" {
		errs = append(errs, os.RemoveAll(n.recordDir))
	}
	return errors.Join(errs...)
}

// ignoreKilled drops the error of a process that ended by the SIGKILL we sent.
func ignoreKilled(err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return nil
		}
	}
	return err
}

// removeSandboxes stops and removes every pod sandbox containerd holds.
func (n *realNode) removeSandboxes() error {
	client, done, err := n.criClient()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := client.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("localcluster: node %s: listing pod sandboxes: %w", n.name, err)
	}
	var errs []error
	for _, sb := range list.GetItems() {
		if _, err := client.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("localcluster: node %s: stopping sandbox of %s/%s: %w", n.name, sb.GetMetadata().GetNamespace(), sb.GetMetadata().GetName(), err))
			continue
		}
		if _, err := client.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("localcluster: node %s: removing sandbox of %s/%s: %w", n.name, sb.GetMetadata().GetNamespace(), sb.GetMetadata().GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("localcluster: reading mounts: %w", err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountPath(fields[4])
		if p == dir || strings.HasPrefix(p, prefix) {
			points = append(points, p)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("localcluster: reading mounts: %w", err)
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("localcluster: unmounting %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// containerLogLinks is where the kubelet links every container's log (a path it does not let
// us choose).
const containerLogLinks = "/var/log/containers"

// removeLogLinks removes the kubelet's links in containerLogLinks to this node's pod logs,
// which the kubelet removes only when it garbage-collects a container itself.
func (n *realNode) removeLogLinks() error {
	entries, err := os.ReadDir(containerLogLinks)
	if err != nil {
		return nil
	}
	prefix := filepath.Join(n.dir, "pod-logs") + "/"
	var errs []error
	for _, e := range entries {
		p := filepath.Join(containerLogLinks, e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, prefix) {
			if err := os.Remove(p); err != nil {
				errs = append(errs, fmt.Errorf("localcluster: node %s: removing log link: %w", n.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeCgroups kills whatever still runs in the node's cgroups and removes them, deepest
// first, in every hierarchy.
func (n *realNode) removeCgroups() error {
	if !strings.HasPrefix(n.cgroupRoot, "/l5d-") || strings.Contains(n.cgroupRoot[1:], "/") {
		return fmt.Errorf("localcluster: node %s: refusing to remove cgroup root %q, not one of ours", n.name, n.cgroupRoot)
	}
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		root := filepath.Join(h, n.cgroupRoot)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if procs, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(procs)) {
					if pid, err := strconv.Atoi(f); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			if err := removeCgroupDir(d); err != nil {
				errs = append(errs, fmt.Errorf("localcluster: node %s: removing cgroup %s: %w", n.name, d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeCgroupDir removes an empty cgroup, retrying while its killed processes exit.
func removeCgroupDir(d string) error {
	var err error
	for range 100 {
		if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// checkKubeletPrereqs checks what Options.Kubelet needs and fills in the default runtime.
func checkKubeletPrereqs(opts *Options) error {
	if opts.CNIPlugins == "" {
		return errors.New("localcluster: Options.Kubelet needs Options.CNIPlugins (the directory tools/cni-plugins/build.sh prints): containerd sets pods' networks up through CNI")
	}
	if _, err := exec.LookPath("containerd"); err != nil {
		return errors.New("localcluster: Options.Kubelet needs containerd on PATH (Debian: apt-get install containerd runc)")
	}
	if opts.Runtime == "" {
		p, err := exec.LookPath("runc")
		if err != nil {
			return errors.New("localcluster: Options.Kubelet needs runc on PATH (Debian: apt-get install runc) or Options.Runtime")
		}
		opts.Runtime = p
	}
	if st, err := os.Stat(filepath.Join(kube.BinDir(), "kubelet")); err != nil || st.IsDir() {
		return fmt.Errorf("localcluster: the kubelet binary %s is missing; build it with `make kube-bins`", filepath.Join(kube.BinDir(), "kubelet"))
	}
	return nil
}

// startRealNodes serves the registry, pushes the pause image to it, and starts a real node
// for every name of NodeNames, returning once all are Ready.
func (c *Cluster) startRealNodes(ctx context.Context) error {
	var err error
	reclaimDeadNodes(c.network.Node, c.log.With("component", "reclaim"))
	if c.registry, err = startRegistry(c.network.Node, c.opts.Registry, c.log.With("component", "registry")); err != nil {
		return err
	}
	pause, err := c.pauseProgram()
	if err != nil {
		return err
	}
	img, err := ProgramImage(pause)
	if err != nil {
		return err
	}
	if err := c.PushImage(ctx, strings.TrimPrefix(PauseImage, "registry.k8s.io/"), img); err != nil {
		return err
	}
	layouts := c.opts.ImageLayouts
	if c.opts.L5DImages != "" {
		dir, err := L5DImageLayout(ctx, c.opts.L5DImages, filepath.Join(c.opts.RunDir, "images"), c.log.With("component", "images"))
		if err != nil {
			return err
		}
		layouts = append(layouts, dir)
	}
	for _, dir := range layouts {
		if err := c.PushLayout(ctx, dir); err != nil {
			return err
		}
	}
	c.sysctls = saveSysctls()
	for i, name := range c.NodeNames() {
		n, err := startRealNode(ctx, realNodeConfig{
			name:      name,
			index:     i,
			runDir:    c.opts.RunDir,
			kube:      c.kube,
			apiServer: "https://" + c.APIServerAddr().String(),
			node:      c.network.Node,
			cniConf:   c.CNIConfDir(),
			cniBin:    c.CNIBinDir(),
			runtime:   c.opts.Runtime,
			sysctls:   c.sysctls,
			log:       c.log.With("component", "node", "node", name),
		})
		if err != nil {
			return err
		}
		c.realNodes = append(c.realNodes, n)
		for what, p := range map[string]*netns.Process{"kubelet": n.kubelet, "containerd": n.containerd} {
			go func() {
				<-p.Done()
				if !c.closing.Load() {
					c.fail(fmt.Errorf("localcluster: the %s of node %s exited; see %s", what, name, filepath.Join(c.opts.RunDir, "logs", what+"-"+name+".log")))
				}
			}()
		}
	}
	for _, n := range c.realNodes {
		if err := waitNodeReady(ctx, c.kube.Client(), n); err != nil {
			return err
		}
	}
	return nil
}

// pauseProgram is the sandbox's program: pause in BinDirs, else internal/pause built
// into the run directory (which needs the go command and this repository's workspace).
func (c *Cluster) pauseProgram() (string, error) {
	for _, d := range c.opts.BinDirs {
		p := filepath.Join(d, "pause")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	out := filepath.Join(c.opts.RunDir, "pause")
	cmd := exec.Command("go", "build", "-o", out, "github.com/l5d-go/l5d/test/localcluster/internal/pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("localcluster: building the pause program (or put one named pause in a BinDirs directory): %w\n%s", err, b)
	}
	return out, nil
}

// kubeletSysctls are the host kernel settings the kubelet sets when it starts
// (protectKernelDefaults false, see the kubelet's container manager); the cluster puts back
// the values it found when it closes.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// saveSysctls reads kubeletSysctls.
func saveSysctls() map[string]string {
	saved := map[string]string{}
	for _, k := range kubeletSysctls {
		if b, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			saved[k] = strings.TrimSpace(string(b))
		}
	}
	return saved
}

// restoreSysctls writes back what saveSysctls read.
func restoreSysctls(saved map[string]string) error {
	var errs []error
	for k, v := range saved {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("localcluster: restoring %s to %s: %w", k, v, err))
		}
	}
	return errors.Join(errs...)
}
