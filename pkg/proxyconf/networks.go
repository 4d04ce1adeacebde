package proxyconf

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ParseNetwork reads one network: a CIDR prefix ("10.0.0.0/8", "fd00::/8") or a bare address,
// which stands for that single host. Host bits are cleared ("10.1.2.3/8" is 10.0.0.0/8, as
// iptables and Linkerd store it); an IPv4-mapped IPv6 address is read as the IPv4 one; a
// zone is rejected. This is the one reading of a network everywhere: cluster networks,
// skip-subnets, NetworkAuthentication CIDRs and their exceptions.
func ParseNetwork(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR prefix nor an IP address", s)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q has an IPv6 zone, which a network cannot have", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix: %w", s, err)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix shorter than /96: write the IPv4 prefix instead", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// ParseNetworks reads a comma-separated list of networks (each as ParseNetwork reads it),
// the syntax of LINKERD2_PROXY_DESTINATION_NETWORKS, the policy controller's
// --cluster-networks, clusterNetworks and skip-subnets. Spaces and empty items (a trailing
// comma) are ignored; duplicates are dropped and the result is sorted, IPv4 first. Any
// malformed item is an error naming it.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		p, err := ParseNetwork(item)
		if err != nil {
			return nil, fmt.Errorf("network list %q: %w", s, err)
		}
		out = append(out, p)
	}
	return NormaliseNetworks(out), nil
}

// NormaliseNetworks returns the prefixes sorted (IPv4 before IPv6, then by address and
// length) with duplicates removed.
func NormaliseNetworks(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(ps)
}

// SplitNetworks separates a list into its IPv4 and IPv6 prefixes, keeping order.
func SplitNetworks(ps []netip.Prefix) (v4, v6 []netip.Prefix) {
	for _, p := range ps {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6
}
