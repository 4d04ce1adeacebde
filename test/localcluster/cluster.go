package localcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l5d-go/l5d/test/kube"
	"github.com/l5d-go/l5d/test/localcluster/internal/clusterdns"
	"github.com/l5d-go/l5d/test/netns"
	"github.com/l5d-go/l5d/test/node"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The address plan of a cluster with the default Addresses (Cluster's methods of the
// same names give any cluster's).
var (
	// NodeIP is the node's address: the bridge in the node namespace (test/netns's
	// gateway). Pods reach the API server on it (the "kubernetes" Service's endpoint).
	NodeIP = netns.GatewayV4
	// ClusterCIDR is the pod network.
	ClusterCIDR = netns.PodNetworkV4
	// ServiceCIDR is the range of Service cluster IPs.
	ServiceCIDR = netip.MustParsePrefix(kube.ServiceCIDR)
	// APIServiceIP is the cluster IP of the default "kubernetes" Service.
	APIServiceIP = netip.MustParseAddr("10.96.0.1")
	// LoadBalancerCIDR is the range LoadBalancer Services get their addresses from.
	LoadBalancerCIDR = netip.MustParsePrefix("10.250.0.0/24")
)

// Addresses is a cluster's address plan. Two clusters that run side by side and are
// joined by Connect need disjoint PodCIDR and LoadBalancerCIDR; their Service ranges may
// overlap (cluster IPs never leave a cluster) but are best kept apart too, so that an
// address says which cluster it belongs to.
type Addresses struct {
	// PodCIDR is the IPv4 pod network (/16 or wider): the node's bridge holds its first
	// address (the node address, NodeIP), pods get the following ones. Default
	// ClusterCIDR, 10.244.0.0/16.
	PodCIDR netip.Prefix
	// PodCIDRv6 is the IPv6 pod network (/112 or wider). Default fd00:244::/64.
	PodCIDRv6 netip.Prefix
	// ServiceCIDR is the range of Service cluster IPs: the "kubernetes" Service gets its
	// first address, kube-dns its tenth. Default ServiceCIDR, 10.96.0.0/16.
	ServiceCIDR netip.Prefix
	// LoadBalancerCIDR is where the cluster's load-balancer controller takes the
	// addresses of LoadBalancer Services from (see README.md). Default LoadBalancerCIDR,
	// 10.250.0.0/24.
	LoadBalancerCIDR netip.Prefix
}

// withDefaults fills a's zero fields with the defaults and checks the result.
func (a Addresses) withDefaults() (Addresses, error) {
	def := func(p *netip.Prefix, d netip.Prefix) {
		if !p.IsValid() {
			*p = d
		}
	}
	def(&a.PodCIDR, ClusterCIDR)
	def(&a.PodCIDRv6, netns.PodNetworkV6)
	def(&a.ServiceCIDR, ServiceCIDR)
	def(&a.LoadBalancerCIDR, LoadBalancerCIDR)
	if err := a.ranges().Check(); err != nil {
		return a, fmt.Errorf("localcluster: Options.Addresses: %w", err)
	}
	for _, f := range []struct {
		name string
		p    netip.Prefix
	}{{"ServiceCIDR", a.ServiceCIDR}, {"LoadBalancerCIDR", a.LoadBalancerCIDR}} {
		if !f.p.Addr().Is4() || f.p.Masked() != f.p || f.p.Bits() > 28 {
			return a, fmt.Errorf("localcluster: Options.Addresses.%s %v: want an IPv4 prefix of /28 or wider with zero host bits", f.name, f.p)
		}
	}
	if a.PodCIDR.Overlaps(a.ServiceCIDR) || a.PodCIDR.Overlaps(a.LoadBalancerCIDR) || a.ServiceCIDR.Overlaps(a.LoadBalancerCIDR) {
		return a, fmt.Errorf("localcluster: Options.Addresses: the pod (%v), Service (%v) and load-balancer (%v) ranges overlap", a.PodCIDR, a.ServiceCIDR, a.LoadBalancerCIDR)
	}
	return a, nil
}

// ranges are the node network's pod ranges.
func (a Addresses) ranges() netns.Ranges { return netns.Ranges{V4: a.PodCIDR, V6: a.PodCIDRv6} }

// nthAddr is the n-th address after p's first.
func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Addr()
	for range n {
		a = a.Next()
	}
	return a
}

// APIServerNodePort is the second port the API server is reached at on the node address
// (besides its own, random, loopback port): kubeadm's 6443, which Linkerd's control plane
// proxies skip (config.linkerd.io/skip-outbound-ports 443,6443), so that a linked
// cluster's controllers reach this API server directly, as on a real cluster.
const APIServerNodePort = 6443

// DefaultNodeName is the name of the cluster's one Node unless Options says otherwise.
const DefaultNodeName = "l5d-node"

// Options configures Up.
type Options struct {
	// RunDir holds everything the cluster writes: kubeconfig, node-kubeconfig, hosts, the
	// egress selector configuration, logs/ and the node agent's pods/. It is created if
	// missing and left in place by Close.
	RunDir string
	// BinDirs are searched, in order, for the executable an image stands for (see Images).
	BinDirs []string
	// NodeName is the first Node's name; empty means DefaultNodeName.
	NodeName string
	// Nodes is how many Nodes the node agent plays (0 means 1), so that pods with
	// required anti-affinity across hosts (linkerd install --ha) can schedule. Node i > 0
	// is named NodeName-<i+1>. All of them share the one node namespace and bridge.
	Nodes int
	// KubeProxy is the kube-proxy binary; empty means kube-proxy in kube.BinDir().
	KubeProxy string
	// Logger receives the cluster's own log (relay, egress proxy, node agent); nil means
	// slog.Default().
	Logger *slog.Logger
	// CNIPlugins, when set, is a directory holding the standard bridge, host-local and
	// loopback CNI plugins (tools/cni-plugins/build.sh): the node agents then set up pods'
	// networks with the node's CNI configuration (see CNIConfDir and CNIBinDir), whose
	// primary network is the bridge plugin on the node's bridge, as a container runtime
	// does, so that chained plugins such as linkerd-cni run for real.
	CNIPlugins string
	// Kubelet makes every Node a real one: Debian's containerd (with runc) and the real
	// kubelet (kube.BinDir()), both in the node namespace, registering with a client
	// certificate for system:node:<name>; pods are containers from OCI images, which
	// containerd pulls from the cluster's registry (see Registry, MirroredRegistries) and
	// networks with the node's CNI configuration, so CNIPlugins is required. The kubelet
	// API serves logs, exec, attach and port-forward, authorized by the API server.
	// BinDirs then only holds the sandbox program (pause), if one has it (see PauseImage).
	Kubelet bool
	// Registry, with Kubelet, is the OCI distribution handler (e.g. go-containerregistry's
	// registry.New) served on NodeIP:RegistryPort in the node namespace and on a host
	// loopback port (RegistryHost); nil means a new empty in-memory registry. Up pushes
	// the pause image (PauseImage) to it.
	Registry http.Handler
	// ImageLayouts, with Kubelet, are OCI image layout directories (such as make images'
	// output) whose images Up pushes to the registry, each under the reference its
	// index.json names (see PushLayout).
	ImageLayouts []string
	// L5DImages, with Kubelet, is the repository root: Up builds every l5d image from its
	// bin/ (BuildL5DImages, into RunDir/images) and pushes them, tagged with the version
	// bin/linkerd reports, so that that CLI's install, viz install and jaeger install run on
	// the real nodes from l5d's own images. When $L5D_IMAGE_LAYOUT names a layout (make
	// test sets it to make images' output), Up pushes that one instead of building, once
	// CheckL5DLayout finds it is what the build would make (see L5DImageLayout).
	L5DImages string
	// Runtime, with Kubelet, is the OCI runtime binary containerd's runc shim runs; empty
	// means runc from PATH.
	Runtime string
	// Addresses is the cluster's address plan; zero fields mean the defaults. Other than
	// the default pod and Service ranges need the node agent (not Kubelet).
	Addresses Addresses
}

// CNI directories under the run directory, used when Options.CNIPlugins is set.
const (
	cniConfSubdir = "cni/net.d"
	cniBinSubdir  = "cni/bin"
)

// CNIConfDir is the nodes' CNI configuration directory (/etc/cni/net.d on a node); ""
// unless Options.CNIPlugins is set.
func (c *Cluster) CNIConfDir() string {
	if c.opts.CNIPlugins == "" {
		return ""
	}
	return filepath.Join(c.opts.RunDir, cniConfSubdir)
}

// CNIBinDir is the nodes' CNI binary directory (/opt/cni/bin on a node), holding copies of
// the standard plugins; "" unless Options.CNIPlugins is set.
func (c *Cluster) CNIBinDir() string {
	if c.opts.CNIPlugins == "" {
		return ""
	}
	return filepath.Join(c.opts.RunDir, cniBinSubdir)
}

// setUpCNI makes the CNI directories: the standard plugins copied into the binary
// directory (which installers such as linkerd-cni's write to) and the primary network.
func setUpCNI(opts Options) (*node.CNI, error) {
	if opts.CNIPlugins == "" {
		return nil, nil
	}
	conf, bin := filepath.Join(opts.RunDir, cniConfSubdir), filepath.Join(opts.RunDir, cniBinSubdir)
	for _, d := range []string{conf, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("localcluster: CNI directory: %w", err)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		b, err := os.ReadFile(filepath.Join(opts.CNIPlugins, p))
		if err != nil {
			return nil, fmt.Errorf("localcluster: the %s CNI plugin (build it with tools/cni-plugins/build.sh): %w", p, err)
		}
		if err := os.WriteFile(filepath.Join(bin, p), b, 0o755); err != nil {
			return nil, fmt.Errorf("localcluster: installing the %s CNI plugin: %w", p, err)
		}
	}
	network := node.BridgeNetwork(filepath.Join(opts.RunDir, "cni", "ipam"), opts.Addresses.ranges())
	if err := os.WriteFile(filepath.Join(conf, "10-"+node.BridgeNetworkName+".conflist"), []byte(network), 0o644); err != nil {
		return nil, fmt.Errorf("localcluster: writing the CNI network: %w", err)
	}
	return &node.CNI{ConfDir: conf, BinDirs: []string{bin}, CacheDir: filepath.Join(opts.RunDir, "cni", "cache")}, nil
}

// Cluster is a running local cluster: a control plane on host loopback and one node whose
// network namespace is a test/netns Network's bridge namespace. Its methods are safe for
// concurrent use.
type Cluster struct {
	opts        Options
	log         *slog.Logger
	kube        *kube.Cluster
	network     *netns.Network
	relays      []*relay // the API server on NodeIP, at its own port and APIServerNodePort
	egress      *connectProxy
	dns         *clusterdns.Server
	kubeProxy   *netns.Process
	resolver    atomic.Pointer[resolver] // set once the Service cache has synced
	kubeconfig  string
	nodeConfig  string
	hostsPath   string
	apiPort     int
	cancel      context.CancelFunc
	background  sync.WaitGroup
	closeOnce   sync.Once
	closeErr    error
	closing     atomic.Bool
	failOnce    sync.Once
	failed      chan struct{} // closed by fail
	failErr     error
	kubeProxyLg string
	cni         *node.CNI // nil: test/netns's own pod networks
	registry    *registryServer
	realNodes   []*realNode       // with Options.Kubelet
	sysctls     map[string]string // the host's kernel settings before the first kubelet started
	addrs       Addresses         // Options.Addresses with the defaults filled in
}

// maxUnixSocketPath is the longest path a Unix socket address can hold.
const maxUnixSocketPath = 107

// Up starts a cluster and returns when its control plane is ready, the cluster DNS server
// answers on DNSAddr, kube-proxy runs in the node namespace and the hosts file is written. It needs root. On failure everything
// started is stopped again. The caller must call Close.
func Up(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.RunDir == "" {
		return nil, errors.New("localcluster: Options.RunDir is required")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("localcluster: needs root (network namespaces, iptables in them)")
	}
	if opts.NodeName == "" {
		opts.NodeName = DefaultNodeName
	}
	if opts.Nodes < 0 {
		return nil, fmt.Errorf("localcluster: Options.Nodes is %d; want at least 1", opts.Nodes)
	}
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.KubeProxy == "" {
		opts.KubeProxy = filepath.Join(kube.BinDir(), "kube-proxy")
	}
	if st, err := os.Stat(opts.KubeProxy); err != nil || st.IsDir() {
		return nil, fmt.Errorf("localcluster: kube-proxy binary %s is missing; build it with `make kube-bins`", opts.KubeProxy)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Addresses, err = opts.Addresses.withDefaults(); err != nil {
		return nil, err
	}
	if opts.Kubelet && (opts.Addresses.PodCIDR != ClusterCIDR || opts.Addresses.ServiceCIDR != ServiceCIDR) {
		return nil, fmt.Errorf("localcluster: Options.Addresses: real nodes (Kubelet) use the default pod and Service ranges (%v, %v) only", ClusterCIDR, ServiceCIDR)
	}
	if !opts.Kubelet && (opts.L5DImages != "" || len(opts.ImageLayouts) > 0) {
		return nil, errors.New("localcluster: Options.L5DImages and Options.ImageLayouts need Options.Kubelet (the node agent runs programs, not images)")
	}
	if opts.Kubelet {
		if err := checkKubeletPrereqs(&opts); err != nil {
			return nil, err
		}
	}
	runDir, err := filepath.Abs(opts.RunDir)
	if err != nil {
		return nil, fmt.Errorf("localcluster: run directory: %w", err)
	}
	opts.RunDir = runDir
	if err := os.MkdirAll(filepath.Join(runDir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("localcluster: creating the run directory: %w", err)
	}
	cni, err := setUpCNI(opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &Cluster{
		opts:       opts,
		cni:        cni,
		log:        opts.Logger,
		cancel:     cancel,
		kubeconfig: filepath.Join(runDir, "kubeconfig"),
		nodeConfig: filepath.Join(runDir, "node-kubeconfig"),
		hostsPath:  filepath.Join(runDir, "hosts"),
		failed:     make(chan struct{}),
		addrs:      opts.Addresses,
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()

	if c.network, err = netns.NewNetworkIn(c.addrs.ranges()); err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	if err := c.writeNodeNetwork(); err != nil {
		return nil, err
	}
	// The node namespace routes between pods, and has a route for cluster IPs so that its
	// own connections to them (the egress proxy's) get as far as kube-proxy's OUTPUT rules,
	// as a real node's default route lets them.
	if err := c.network.Node.Run(exec.Command("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")); err != nil {
		return nil, fmt.Errorf("localcluster: enabling forwarding in the node namespace: %w", err)
	}
	for _, r := range []netip.Prefix{c.addrs.ServiceCIDR, c.addrs.LoadBalancerCIDR} {
		if err := c.network.Node.Run(exec.Command("ip", "route", "add", r.String(), "dev", "br0", "src", c.NodeIP().String())); err != nil {
			return nil, fmt.Errorf("localcluster: routing the service range %v in the node namespace: %w", r, err)
		}
	}

	// The egress proxy's socket must exist before the API server reads its configuration;
	// it resolves names only once the Service informer below runs.
	egressLn, egressPath, err := listenEgressSocket(runDir)
	if err != nil {
		return nil, err
	}
	egressCfg := filepath.Join(runDir, "egress-selector.yaml")
	if err := os.WriteFile(egressCfg, []byte(egressSelectorConfig(egressPath)), 0o600); err != nil {
		egressLn.Close()
		return nil, fmt.Errorf("localcluster: writing the egress selector configuration: %w", err)
	}
	c.egress = newConnectProxy(egressLn, func(hostport string) (string, error) {
		r := c.resolver.Load()
		if r == nil {
			return "", errors.New("the Service cache is not ready yet")
		}
		return r.resolve(hostport)
	}, c.dialNode, c.log.With("component", "egress-proxy"))

	c.kube, err = kube.Start(kube.Options{
		ControllerManager: true,
		Scheduler:         true,
		AdvertiseAddress:  c.NodeIP().String(),
		ServingHosts:      []string{c.APIServiceIP().String()},
		ServiceCIDR:       c.addrs.ServiceCIDR.String(),
		// Kubelets are reached at their Node's InternalIP (the node address, through the
		// egress proxy), not at the host name the default prefers.
		APIServerArgs: []string{"--egress-selector-config-file=" + egressCfg, "--kubelet-preferred-address-types=InternalIP,Hostname"},
		ControllerManagerArgs: []string{
			"--cluster-cidr=" + c.addrs.PodCIDR.String(),
			"--service-cluster-ip-range=" + c.addrs.ServiceCIDR.String(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("localcluster: starting the control plane: %w", err)
	}
	if c.apiPort, err = portOf(c.kube.Host()); err != nil {
		return nil, err
	}
	// First, before any other Service can be given its conventional address.
	if err := ensureKubeDNSService(ctx, c.kube.Client(), c.DNSServiceIP(), c.DNSAddr()); err != nil {
		return nil, err
	}

	// Pods -> API server: listeners in the node namespace on the advertised address, at
	// the API server's port and at APIServerNodePort, relayed to the loopback port.
	upstream := "127.0.0.1:" + strconv.Itoa(c.apiPort)
	ports := []int{c.apiPort}
	if c.apiPort != APIServerNodePort {
		ports = append(ports, APIServerNodePort)
	}
	for _, port := range ports {
		ln, err := c.network.Node.Listen("tcp", netip.AddrPortFrom(c.NodeIP(), uint16(port)).String())
		if err != nil {
			return nil, fmt.Errorf("localcluster: listening for pods on the node address, port %d: %w", port, err)
		}
		c.relays = append(c.relays, newRelay(ln, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", upstream)
		}, c.log.With("component", "apiserver-relay", "port", port)))
	}

	if err := c.kube.WriteKubeconfig(c.kubeconfig, c.kube.Host()); err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	if err := c.kube.WriteKubeconfig(c.nodeConfig, "https://"+c.APIServerAddr().String()); err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}

	factory := informers.NewSharedInformerFactory(c.kube.Client(), 0)
	svcInformer := factory.Core().V1().Services()
	sliceInformer := factory.Discovery().V1().EndpointSlices()
	nsLister := factory.Core().V1().Namespaces().Lister()
	hosts, err := newHostsWriter(c.hostsPath, svcInformer.Lister(), sliceInformer.Lister(), c.log.With("component", "hosts"))
	if err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	if _, err := svcInformer.Informer().AddEventHandler(hosts.handler()); err != nil {
		return nil, fmt.Errorf("localcluster: watching services: %w", err)
	}
	if _, err := sliceInformer.Informer().AddEventHandler(hosts.handler()); err != nil {
		return nil, fmt.Errorf("localcluster: watching endpoint slices: %w", err)
	}
	lbs := newLoadBalancers(c.kube.Client(), svcInformer.Lister(), c.addrs.LoadBalancerCIDR, c.log.With("component", "load-balancers"))
	if _, err := svcInformer.Informer().AddEventHandler(lbs.handler()); err != nil {
		return nil, fmt.Errorf("localcluster: watching services: %w", err)
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil, fmt.Errorf("localcluster: %v cache did not sync", typ)
		}
	}
	c.resolver.Store(&resolver{services: svcInformer.Lister()})
	records := informerRecords{services: svcInformer.Lister(), slices: sliceInformer.Lister(), namespaces: nsLister}
	if c.dns, err = startDNS(c.network.Node, c.DNSAddr(), records, c.log.With("component", "dns")); err != nil {
		return nil, err
	}
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		lbs.run(ctx)
	}()
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		defer factory.Shutdown()
		hosts.run(ctx)
	}()

	if opts.Kubelet {
		if err := c.startRealNodes(ctx); err != nil {
			return nil, err
		}
	} else {
		for _, name := range c.NodeNames() {
			if err := c.ensureNode(ctx, name); err != nil {
				return nil, err
			}
			c.startNode(ctx, name)
		}
	}
	if err := c.startKubeProxy(); err != nil {
		return nil, err
	}
	return c, nil
}

// startNode runs the node agent (test/node) for Node name until ctx ends.
func (c *Cluster) startNode(ctx context.Context, name string) {
	cfg := node.Config{
		Client:        c.kube.Client(),
		NodeName:      name,
		Network:       c.network,
		Images:        Images(c.opts.BinDirs...),
		HostsFile:     c.hostsPath,
		ClusterDNS:    c.DNSAddr().Addr(),
		ClusterDomain: ClusterDomain,
		RunDir:        c.opts.RunDir,
		Logger:        c.log.With("component", "node", "node", name),
		CNI:           c.cni,
	}
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		err := node.Run(ctx, cfg)
		if c.closing.Load() {
			return
		}
		if err == nil {
			err = errors.New("stopped")
		}
		c.fail(fmt.Errorf("localcluster: the node agent of %s: %w", name, err))
	}()
}

// listenEgressSocket makes the egress proxy's Unix socket: RunDir/egress.sock when that
// path is short enough for a socket address, else one in a fresh directory under /tmp.
func listenEgressSocket(runDir string) (net.Listener, string, error) {
	path := filepath.Join(runDir, "egress.sock")
	if len(path) > maxUnixSocketPath {
		dir, err := os.MkdirTemp("", "l5dc-")
		if err != nil {
			return nil, "", fmt.Errorf("localcluster: making a directory for the egress socket: %w", err)
		}
		path = filepath.Join(dir, "egress.sock")
	}
	_ = os.Remove(path) // a socket file left by an earlier run
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, "", fmt.Errorf("localcluster: listening on the egress socket: %w", err)
	}
	return ln, path, nil
}

// portOf returns the port of an https://host:port URL.
func portOf(hostURL string) (int, error) {
	_, port, err := net.SplitHostPort(hostURL[len("https://"):])
	if err != nil {
		return 0, fmt.Errorf("localcluster: API server URL %q: %w", hostURL, err)
	}
	return strconv.Atoi(port)
}

// ensureNode registers Node name with the node address unless it exists, so kube-proxy
// finds its node IP at once; the node agent takes the object over.
func (c *Cluster) ensureNode(ctx context.Context, name string) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
		}},
		Spec: corev1.NodeSpec{PodCIDR: c.addrs.PodCIDR.String(), PodCIDRs: []string{c.addrs.PodCIDR.String()}},
	}
	nodes := c.kube.Client().CoreV1().Nodes()
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("localcluster: registering node %s: %w", name, err)
	}
	created.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: c.NodeIP().String()},
		{Type: corev1.NodeHostName, Address: name},
	}
	if _, err := nodes.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("localcluster: setting node %s's address: %w", name, err)
	}
	return nil
}

// startKubeProxy runs kube-proxy in iptables mode inside the node namespace, talking to
// the API server through the relay, leaving the conntrack sysctls alone and masquerading
// all Service traffic: pods share one bridge, so without br_netfilter (a host setting) a
// reply from a backend pod would bypass the node namespace's un-DNAT unless the client's
// address is rewritten to the node's.
func (c *Cluster) startKubeProxy() error {
	c.kubeProxyLg = filepath.Join(c.opts.RunDir, "logs", "kube-proxy.log")
	logFile, err := os.OpenFile(c.kubeProxyLg, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("localcluster: opening the kube-proxy log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(c.opts.KubeProxy,
		"--kubeconfig="+c.nodeConfig,
		"--proxy-mode=iptables",
		"--hostname-override="+c.opts.NodeName,
		"--cluster-cidr="+c.addrs.PodCIDR.String(),
		"--bind-address="+c.NodeIP().String(),
		"--healthz-bind-address="+c.NodeIP().String()+":10256",
		"--metrics-bind-address="+c.NodeIP().String()+":10249",
		"--masquerade-all",
		"--conntrack-max-per-core=0",
		"--conntrack-min=0",
		"--conntrack-tcp-timeout-established=0",
		"--conntrack-tcp-timeout-close-wait=0",
		"--iptables-min-sync-period=0s",
		"--v=2",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	if c.kubeProxy, err = c.network.Node.Start(cmd); err != nil {
		return fmt.Errorf("localcluster: starting kube-proxy: %w", err)
	}
	p := c.kubeProxy
	go func() {
		err := p.Wait()
		if !c.closing.Load() {
			c.fail(fmt.Errorf("localcluster: kube-proxy exited (%v); see %s", err, c.kubeProxyLg))
		}
	}()
	return nil
}

// fail records the first reason the cluster stopped working and closes Done.
func (c *Cluster) fail(err error) {
	c.failOnce.Do(func() {
		c.failErr = err
		c.log.Error("cluster failure", "err", err)
		close(c.failed)
	})
}

// Done is closed when a part of the cluster that should run until Close (kube-proxy, the
// node agent) has stopped on its own; Err says why.
func (c *Cluster) Done() <-chan struct{} { return c.failed }

// Err is the reason Done was closed, or nil while it is open.
func (c *Cluster) Err() error {
	select {
	case <-c.failed:
		return c.failErr
	default:
		return nil
	}
}

// Kubeconfig is the path of an admin kubeconfig for the API server on host loopback, for
// kubectl, the linkerd CLI and tests.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// NodeKubeconfig is the path of an admin kubeconfig whose server is the node address
// (APIServerAddr), usable from the node namespace and from pods.
func (c *Cluster) NodeKubeconfig() string { return c.nodeConfig }

// Client is an admin clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.kube.Client() }

// RESTConfig is a copy of the admin client configuration (host loopback).
func (c *Cluster) RESTConfig() *rest.Config { return c.kube.RESTConfig() }

// Kube is the underlying control plane, for the test/kube helpers (Apply, Namespace, ...).
func (c *Cluster) Kube() *kube.Cluster { return c.kube }

// Network is the node's network: Network.Node is the node namespace, pods join its bridge.
func (c *Cluster) Network() *netns.Network { return c.network }

// HostsFile is the path of the hosts file naming every Service (see README.md).
func (c *Cluster) HostsFile() string { return c.hostsPath }

// RunDir is the run directory, absolute.
func (c *Cluster) RunDir() string { return c.opts.RunDir }

// NodeName is the first Node's name (kube-proxy runs as that node).
func (c *Cluster) NodeName() string { return c.opts.NodeName }

// NodeNames are the names of every Node the cluster's node agent plays, first one first.
func (c *Cluster) NodeNames() []string {
	names := []string{c.opts.NodeName}
	for i := 2; i <= c.opts.Nodes; i++ {
		names = append(names, fmt.Sprintf("%s-%d", c.opts.NodeName, i))
	}
	return names
}

// APIServerAddr is where pods reach the API server directly: the node address and the
// API server's port, the endpoint of the "kubernetes" Service. Another cluster joined by
// Connect reaches it there too (its serving certificate is valid for the node address).
func (c *Cluster) APIServerAddr() netip.AddrPort {
	return netip.AddrPortFrom(c.NodeIP(), uint16(c.apiPort))
}

// Addresses is the cluster's address plan, defaults filled in.
func (c *Cluster) Addresses() Addresses { return c.addrs }

// NodeIP is the node's address: the first of the pod network, on the node namespace's bridge.
func (c *Cluster) NodeIP() netip.Addr { return c.addrs.ranges().GatewayV4() }

// APIServiceIP is the cluster IP of the "kubernetes" Service: the Service range's first.
func (c *Cluster) APIServiceIP() netip.Addr { return nthAddr(c.addrs.ServiceCIDR, 1) }

// DNSServiceIP is the cluster IP of the kube-dns Service: the Service range's tenth.
func (c *Cluster) DNSServiceIP() netip.Addr { return nthAddr(c.addrs.ServiceCIDR, 10) }

// DNSAddr is where the cluster DNS server listens in the node namespace: NodeIP, port 53.
func (c *Cluster) DNSAddr() netip.AddrPort { return netip.AddrPortFrom(c.NodeIP(), 53) }

// KubeProxyLog is the path of kube-proxy's log.
func (c *Cluster) KubeProxyLog() string { return c.kubeProxyLg }

// DialPod dials addr over TCP from the node namespace, as the node would: a pod IP, a
// cluster IP (through kube-proxy's rules) or a Service name <svc>.<ns>[.svc[.cluster.local]]
// with a port, which becomes the Service's cluster IP.
func (c *Cluster) DialPod(ctx context.Context, addr string) (net.Conn, error) {
	if r := c.resolver.Load(); r != nil {
		resolved, err := r.resolve(addr)
		if err != nil {
			return nil, fmt.Errorf("localcluster: %w", err)
		}
		addr = resolved
	}
	return c.dialNode(ctx, addr)
}

// dialNode dials the literal address addr from the node namespace.
func (c *Cluster) dialNode(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := c.network.Node.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("localcluster: dialling %s from the node: %w", addr, err)
	}
	return conn, nil
}

// Close stops the node agent (killing every pod), kube-proxy, the relay, the egress proxy,
// the DNS server and the control plane and removes the network namespaces. The run directory stays. It may be called more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		c.closing.Store(true)
		c.cancel()
		for _, n := range c.realNodes {
			errs = append(errs, n.close())
		}
		if c.sysctls != nil {
			errs = append(errs, restoreSysctls(c.sysctls))
		}
		if c.registry != nil {
			errs = append(errs, c.registry.Close())
		}
		if c.kubeProxy != nil {
			errs = append(errs, c.kubeProxy.Kill())
		}
		for _, r := range c.relays {
			errs = append(errs, r.Close())
		}
		if c.egress != nil {
			errs = append(errs, c.egress.Close())
		}
		if c.dns != nil {
			errs = append(errs, c.dns.Close())
		}
		done := make(chan struct{})
		go func() { c.background.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			errs = append(errs, errors.New("localcluster: the node agent and hosts writer did not stop within a minute"))
		}
		if c.kube != nil {
			c.kube.Stop()
		}
		if c.network != nil {
			errs = append(errs, c.network.Close())
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}
