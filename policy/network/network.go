// Package network parses the CIDRs of a NetworkAuthentication and of the cluster-networks
// flag: user input at a trust boundary, so every failure names the offending value.
package network

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParsePrefix parses a CIDR ("10.0.0.0/8", "fd00::/8") or a bare address, which stands for
// that single host. The result is masked to its network address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an IP address: %w", s, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Network is one allowed network with the sub-networks excluded from it.
type Network struct {
	Net    netip.Prefix
	Except []netip.Prefix
}

// Parse parses a network and its exceptions. Any unparsable exception is an error: dropping
// it would silently widen what the network allows.
func Parse(cidr string, except []string) (Network, error) {
	p, err := ParsePrefix(cidr)
	if err != nil {
		return Network{}, fmt.Errorf("cidr: %w", err)
	}
	n := Network{Net: p}
	for i, e := range except {
		ep, err := ParsePrefix(e)
		if err != nil {
			return Network{}, fmt.Errorf("except[%d]: %w", i, err)
		}
		n.Except = append(n.Except, ep)
	}
	return n, nil
}

// ParseList parses a comma-separated list of CIDRs, as given to -cluster-networks. Empty
// entries are errors.
func ParseList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, c := range strings.Split(s, ",") {
		p, err := ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Contains reports whether a is in the network and in none of its exceptions.
func (n Network) Contains(a netip.Addr) bool {
	a = a.Unmap()
	if !n.Net.Contains(a) {
		return false
	}
	for _, e := range n.Except {
		if e.Contains(a) {
			return false
		}
	}
	return true
}
