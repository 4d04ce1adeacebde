package localcluster

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/l5d-go/l5d/test/netns"
)

// Connect routes between the node networks of two clusters that run side by side, as the
// network between two clusters' nodes would: a link between their node namespaces (made
// only inside them), over which each routes the other's pod network and load-balancer
// range. Pods of one then reach the other's pods by their addresses (a flat network, for
// pod-to-pod multicluster), its LoadBalancer Services by their ingress addresses (through
// the other's kube-proxy) and its API server at its APIServerAddr or on its NodeIP at
// APIServerNodePort; cluster IPs stay local. The pod and load-balancer ranges of a and b
// must not overlap. The link goes when either cluster closes.
func Connect(a, b *Cluster) error { return connectNodes(a.nodeNetwork(), b.nodeNetwork()) }

// ConnectRunDirs is Connect for running clusters known by their run directories, such as
// two `l5d-cluster up` processes (`l5d-cluster connect`): Up records each cluster's node
// namespace and ranges in RUN_DIR/node-network.json.
func ConnectRunDirs(a, b string) error {
	na, err := readNodeNetwork(a)
	if err != nil {
		return err
	}
	nb, err := readNodeNetwork(b)
	if err != nil {
		return err
	}
	return connectNodes(na, nb)
}

// nodeNetwork is what routing to a cluster takes.
type nodeNetwork struct {
	// Namespace is the node namespace's name (`ip netns list`).
	Namespace        string       `json:"nodeNamespace"`
	PodCIDR          netip.Prefix `json:"podCIDR"`
	PodCIDRv6        netip.Prefix `json:"podCIDRv6"`
	LoadBalancerCIDR netip.Prefix `json:"loadBalancerCIDR"`
}

// nodeNetworkFile is the run directory's record of the node network.
const nodeNetworkFile = "node-network.json"

func (c *Cluster) nodeNetwork() nodeNetwork {
	return nodeNetwork{Namespace: c.network.Node.Name(), PodCIDR: c.addrs.PodCIDR, PodCIDRv6: c.addrs.PodCIDRv6, LoadBalancerCIDR: c.addrs.LoadBalancerCIDR}
}

func (c *Cluster) writeNodeNetwork() error {
	b, err := json.MarshalIndent(c.nodeNetwork(), "", "  ")
	if err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.opts.RunDir, nodeNetworkFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("localcluster: recording the node network: %w", err)
	}
	return nil
}

func readNodeNetwork(runDir string) (nodeNetwork, error) {
	var n nodeNetwork
	path := filepath.Join(runDir, nodeNetworkFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return n, fmt.Errorf("localcluster: no cluster's node network recorded in %s: %w", runDir, err)
	}
	if err := json.Unmarshal(b, &n); err != nil {
		return n, fmt.Errorf("localcluster: %s: %w", path, err)
	}
	return n, nil
}

func connectNodes(a, b nodeNetwork) error {
	if a.LoadBalancerCIDR.Overlaps(b.LoadBalancerCIDR) {
		return fmt.Errorf("localcluster: cannot connect clusters whose load-balancer ranges overlap (%v, %v)", a.LoadBalancerCIDR, b.LoadBalancerCIDR)
	}
	err := netns.ConnectNodes(a.Namespace, netns.Ranges{V4: a.PodCIDR, V6: a.PodCIDRv6}, b.Namespace, netns.Ranges{V4: b.PodCIDR, V6: b.PodCIDRv6},
		[]netip.Prefix{b.LoadBalancerCIDR}, []netip.Prefix{a.LoadBalancerCIDR})
	if err != nil {
		return fmt.Errorf("localcluster: connecting the clusters: %w", err)
	}
	return nil
}
