package netns

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// Prefix starts the name of every namespace this package makes.
const Prefix = "l5dt-"

// The default pod networks and the bridge's (gateway) addresses in them: those of
// NewNetwork, and DefaultRanges.
var (
	PodNetworkV4 = netip.MustParsePrefix("10.244.0.0/16")
	PodNetworkV6 = netip.MustParsePrefix("fd00:244::/64")
	GatewayV4    = netip.MustParseAddr("10.244.0.1")
	GatewayV6    = netip.MustParseAddr("fd00:244::1")
)

// Ranges are a Network's pod networks. The bridge holds the first address of each (the
// pods' gateway); pods get the following ones.
type Ranges struct {
	// V4 is an IPv4 prefix of /16 or wider whose host bits are zero.
	V4 netip.Prefix
	// V6 is an IPv6 prefix of /112 or wider whose host bits are zero.
	V6 netip.Prefix
}

// DefaultRanges are NewNetwork's: PodNetworkV4 and PodNetworkV6.
var DefaultRanges = Ranges{V4: PodNetworkV4, V6: PodNetworkV6}

// Check says what is wrong with r, or nil.
func (r Ranges) Check() error {
	switch {
	case !r.V4.IsValid() || !r.V4.Addr().Is4() || r.V4.Bits() > 16 || r.V4.Masked() != r.V4:
		return fmt.Errorf("netns: IPv4 pod network %v: want an IPv4 prefix of /16 or wider with zero host bits, such as 10.244.0.0/16", r.V4)
	case !r.V6.IsValid() || !r.V6.Addr().Is6() || r.V6.Addr().Is4In6() || r.V6.Bits() > 112 || r.V6.Masked() != r.V6:
		return fmt.Errorf("netns: IPv6 pod network %v: want an IPv6 prefix of /112 or wider with zero host bits, such as fd00:244::/64", r.V6)
	}
	return nil
}

// GatewayV4 is the bridge's IPv4 address: the first one of V4.
func (r Ranges) GatewayV4() netip.Addr { return r.V4.Addr().Next() }

// GatewayV6 is the bridge's IPv6 address: the first one of V6.
func (r Ranges) GatewayV6() netip.Addr { return r.V6.Addr().Next() }

// Network is a bridge in a namespace of its own (the "node") and the pods attached to it.
// Its methods are safe for concurrent use.
type Network struct {
	// Node is the bridge's namespace, which plays the node's network namespace.
	Node *Namespace

	id     string // "<pid>-<start>-<n>", shared by the names of all its namespaces
	ranges Ranges

	mu     sync.Mutex
	closed bool
	pods   map[string]*Pod
	order  []*Pod
	next   int // host number of the next pod
}

// Pod is a namespace on a Network's bridge. It has every method of Namespace.
type Pod struct {
	*Namespace
	// PodName is the name the pod was added with.
	PodName string
	// IPv4 and IPv6 are eth0's addresses, in the Network's Ranges.
	IPv4, IPv6 netip.Addr
	// Interface is the pod's link to the bridge: "eth0".
	Interface string
}

var (
	networkSeq  atomic.Int64
	reclaimOnce sync.Once
	reclaimErr  error
	ownerID     = sync.OnceValues(processID)
)

// New makes a Network for a test and removes it, with its pods and their processes, when
// the test ends. It skips the test when not running as root, and fails it if the network
// cannot be made.
func New(tb testing.TB) *Network {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("netns: needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces")
	}
	n, err := NewNetwork()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("netns: cleaning up: %v", err)
		}
	})
	return n
}

// NewNetwork makes a Network: a namespace holding bridge br0 with 10.244.0.1/16 and
// fd00:244::1/64 (DefaultRanges). The caller must Close it. The first call in a process also removes the
// namespaces of earlier test processes that have ended (see Reclaim).
func NewNetwork() (*Network, error) { return NewNetworkIn(DefaultRanges) }

// NewNetworkIn is NewNetwork with pod networks r: the bridge holds r's gateway addresses
// and pods get addresses from r, so that Networks with disjoint Ranges can be routed to
// each other (see Connect).
func NewNetworkIn(r Ranges) (*Network, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("netns: the ip command (Debian package iproute2) is needed: %w", err)
	}
	reclaimOnce.Do(func() { reclaimErr = Reclaim() })
	if reclaimErr != nil {
		return nil, reclaimErr
	}
	owner, err := ownerID()
	if err != nil {
		return nil, err
	}
	n := &Network{
		id:     fmt.Sprintf("%s-%d", owner, networkSeq.Add(1)),
		ranges: r,
		pods:   map[string]*Pod{},
		next:   2,
	}
	node, err := createNamespace(Prefix + n.id + "-node")
	if err != nil {
		return nil, err
	}
	n.Node = node
	if _, err := ipBatch(node.name,
		"link set lo up",
		"link add br0 type bridge stp_state 0 forward_delay 0",
		"addr add "+netip.PrefixFrom(r.GatewayV4(), r.V4.Bits()).String()+" dev br0",
		"addr add "+netip.PrefixFrom(r.GatewayV6(), r.V6.Bits()).String()+" dev br0 nodad",
		"link set br0 up",
	); err != nil {
		return nil, errors.Join(err, node.close())
	}
	return n, nil
}

// podName is what AddPod accepts: it ends up in a file name and in `ip netns list`.
var podName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// Pod adds a pod named name (see AddPod) and fails the test if that does not work.
func (n *Network) Pod(tb testing.TB, name string) *Pod {
	tb.Helper()
	p, err := n.AddPod(name)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// AddPod adds a pod: a namespace joined to the bridge by a veth pair (eth0 inside), with lo
// and eth0 up, the next free addresses of the pod networks (10.244.0.2 and fd00:244::2 for
// the first pod, then .3 and ::3 and so on) and default routes via the bridge. name is
// lower-case letters, digits and dashes, unique within the Network.
func (n *Network) AddPod(name string) (*Pod, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.checkNewPod(name); err != nil {
		return nil, err
	}
	host := n.next
	if host >= 1<<16-1 {
		return nil, errors.New("netns: no addresses left for another pod")
	}
	n.next++
	v4, v6 := n.hostAddrs(host)
	ns, err := createNamespace(Prefix + n.id + "-" + name)
	if err != nil {
		return nil, err
	}
	veth := "vp" + strconv.Itoa(host)
	if _, err := ipBatch(n.Node.name,
		"link add "+veth+" type veth peer name eth0 netns "+ns.name,
		"link set "+veth+" master br0 up",
	); err != nil {
		return nil, errors.Join(err, ns.close())
	}
	if _, err := ipBatch(ns.name,
		"link set lo up",
		"link set eth0 up",
		"addr add "+netip.PrefixFrom(v4, n.ranges.V4.Bits()).String()+" dev eth0",
		"addr add "+netip.PrefixFrom(v6, n.ranges.V6.Bits()).String()+" dev eth0 nodad",
		"route add default via "+n.ranges.GatewayV4().String()+" dev eth0",
		"route add default via "+n.ranges.GatewayV6().String()+" dev eth0",
	); err != nil {
		return nil, errors.Join(err, ns.close())
	}
	p := &Pod{Namespace: ns, PodName: name, IPv4: v4, IPv6: v6, Interface: "eth0"}
	n.pods[name] = p
	n.order = append(n.order, p)
	return p, nil
}

// AddBarePod adds a pod as a container runtime creates a sandbox for its CNI plugins: a
// namespace with only lo, down, and no address; the caller (the plugins) connects it and
// fills in IPv4, IPv6 and Interface. Like AddPod's, its processes are killed and its
// namespace deleted by RemovePod and Close. name is as for AddPod.
func (n *Network) AddBarePod(name string) (*Pod, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.checkNewPod(name); err != nil {
		return nil, err
	}
	ns, err := createNamespace(Prefix + n.id + "-" + name)
	if err != nil {
		return nil, err
	}
	p := &Pod{Namespace: ns, PodName: name}
	n.pods[name] = p
	n.order = append(n.order, p)
	return p, nil
}

// checkNewPod says why a pod named name cannot be added, or nil; n.mu is held.
func (n *Network) checkNewPod(name string) error {
	if !podName.MatchString(name) {
		return fmt.Errorf("netns: pod name %q: want 1-32 lower-case letters, digits or inner dashes", name)
	}
	if n.closed {
		return errors.New("netns: network is closed")
	}
	if _, dup := n.pods[name]; dup {
		return fmt.Errorf("netns: pod %q already exists", name)
	}
	return nil
}

// hostAddrs returns the addresses of host number h (2 and up): 10.244.x.y and
// fd00:244::xy with x.y = h, in the default ranges.
func (n *Network) hostAddrs(h int) (v4, v6 netip.Addr) {
	b4 := n.ranges.V4.Addr().As4()
	b4[2], b4[3] = byte(h>>8), byte(h)
	b6 := n.ranges.V6.Addr().As16()
	b6[14], b6[15] = byte(h>>8), byte(h)
	return netip.AddrFrom4(b4), netip.AddrFrom16(b6)
}

// Ranges are the Network's pod networks.
func (n *Network) Ranges() Ranges { return n.ranges }

// RemovePod kills the processes of the pod named name and deletes its namespace, so the
// name can be added again; its addresses are not handed out again. It fails if the Network
// has no such pod.
func (n *Network) RemovePod(name string) error {
	n.mu.Lock()
	p, ok := n.pods[name]
	if !ok {
		n.mu.Unlock()
		return fmt.Errorf("netns: no pod %q to remove", name)
	}
	delete(n.pods, name)
	for i, q := range n.order {
		if q == p {
			n.order = append(n.order[:i:i], n.order[i+1:]...)
			break
		}
	}
	n.mu.Unlock()
	return p.close()
}

// Pods returns the pods in the order they were added.
func (n *Network) Pods() []*Pod {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Pod(nil), n.order...)
}

// Close kills every process started in the network's namespaces and deletes the pods and
// the bridge namespace. Sockets still open in a namespace keep its (now nameless) kernel
// object alive until they are closed. Close may be called more than once.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	pods := n.order
	n.mu.Unlock()
	var errs []error
	for _, p := range pods {
		errs = append(errs, p.close())
	}
	errs = append(errs, n.Node.close())
	return errors.Join(errs...)
}

// processID names this process: "<pid>-<start time in clock ticks since boot>", so that a
// reused pid is not mistaken for a live owner.
func processID() (string, error) {
	start, err := startTime(os.Getpid())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d-%d", os.Getpid(), start), nil
}

// startTime reads field 22 of /proc/<pid>/stat.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces; fields after the
	// last ")" start at field 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("netns: cannot parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("netns: cannot parse /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// ownerAlive reports whether the process a namespace name's "<pid>-<start>" part names
// still runs. Names it cannot parse count as alive, so they are left alone.
func ownerAlive(name string) bool {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return true
	}
	f := strings.SplitN(rest, "-", 3)
	if len(f) < 3 {
		return true
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return true
	}
	got, err := startTime(pid)
	return err == nil && got == start
}

// Reclaim deletes the namespaces whose names start with Prefix and whose owning test
// process has ended (a run killed before its cleanup), after killing any process still in
// them. Namespaces of live processes, such as another test package running now, are left
// alone.
func Reclaim() error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("netns: listing %s: %w", netnsDir, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, Prefix) || ownerAlive(name) {
			continue
		}
		// Another test process may reclaim the same namespace at the same time: a
		// namespace that is gone when a step fails is not an error.
		gone := func() bool {
			_, err := os.Stat(filepath.Join(netnsDir, name))
			return errors.Is(err, os.ErrNotExist)
		}
		out, err := ipCmd("", "netns", "pids", name)
		if err != nil {
			if !gone() {
				errs = append(errs, err)
			}
			continue
		}
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if _, err := ipCmd("", "netns", "del", name); err != nil && !gone() {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Leftovers returns the names of the namespaces this process made that still exist, for a
// TestMain to check that every Network was closed.
func Leftovers() ([]string, error) {
	owner, err := ownerID()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: listing %s: %w", netnsDir, err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), Prefix+owner+"-") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// ipCmd runs `ip [-n netns] args...` and returns its output.
func ipCmd(netns string, args ...string) ([]byte, error) {
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	cmd := exec.Command("ip", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("netns: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// ipBatch runs several ip commands in namespace netns with one `ip -batch`.
func ipBatch(netns string, lines ...string) ([]byte, error) {
	cmd := exec.Command("ip", "-n", netns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("netns: ip -n %s -batch (%s): %w: %s", netns, strings.Join(lines, "; "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// linkSeq numbers the links Connect makes.
var linkSeq atomic.Int64

// Connect routes between two Networks, as the routers between two clusters' nodes would:
// a veth pair joins a's node namespace to b's, and each node namespace routes the other's
// IPv4 pod network, plus the extra prefixes toB (in a, towards b) and toA (in b), through
// it, the next hop being the other bridge's gateway address. Both node namespaces must
// forward (sysctl net.ipv4.ip_forward=1) for pods to reach each other. Nothing outside the
// two namespaces changes; the link goes when either Network is closed. IPv6 is not routed.
// The Networks' IPv4 pod networks must not overlap.
func Connect(a, b *Network, toB, toA []netip.Prefix) error {
	return ConnectNodes(a.Node.Name(), a.Ranges(), b.Node.Name(), b.Ranges(), toB, toA)
}

// ConnectNodes is Connect for Networks known by their node namespaces' names (as `ip
// netns list` shows them; a Network of another process, say) and pod networks.
func ConnectNodes(aNode string, ra Ranges, bNode string, rb Ranges, toB, toA []netip.Prefix) error {
	if ra.V4.Overlaps(rb.V4) {
		return fmt.Errorf("netns: cannot route between pod networks %v and %v: they overlap", ra.V4, rb.V4)
	}
	for _, ns := range []string{aNode, bNode} {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err != nil {
			return fmt.Errorf("netns: node namespace %s: %w", ns, err)
		}
	}
	link := "l5dx" + strconv.FormatInt(linkSeq.Add(1), 10) + "-" + strconv.Itoa(os.Getpid()%100000)
	if _, err := ipBatch(aNode,
		"link add "+link+" type veth peer name "+link+" netns "+bNode,
		"link set "+link+" up",
	); err != nil {
		return err
	}
	routes := func(ns string, via netip.Addr, prefixes []netip.Prefix) error {
		lines := []string{"link set " + link + " up"}
		for _, p := range prefixes {
			lines = append(lines, "route add "+p.String()+" via "+via.String()+" dev "+link+" onlink")
		}
		_, err := ipBatch(ns, lines...)
		return err
	}
	if err := routes(aNode, rb.GatewayV4(), append([]netip.Prefix{rb.V4}, toB...)); err != nil {
		return err
	}
	return routes(bNode, ra.GatewayV4(), append([]netip.Prefix{ra.V4}, toA...))
}
