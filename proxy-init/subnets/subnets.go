// Package subnets parses the CIDR lists proxy-init accepts (--subnets-to-ignore and the
// config.linkerd.io/skip-subnets annotation): comma-separated IPv4 and IPv6 prefixes such as
// "10.0.0.0/8,192.168.1.0/24,fd00::/8".
package subnets

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Parse reads a comma-separated list of CIDR prefixes. Host bits are cleared
// ("10.1.2.3/8" becomes 10.0.0.0/8, as iptables would store it), IPv4-mapped IPv6
// prefixes are rejected, duplicates are dropped and the result is sorted (IPv4 first).
// Spaces around items are ignored; an empty string gives an empty list. Errors name the
// offending item.
func Parse(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("subnet list %q: item %d is empty", s, i+1)
		}
		p, err := ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("subnet list %q: %w", s, err)
		}
		out = append(out, p)
	}
	return Normalise(out), nil
}

// ParsePrefix reads one CIDR prefix, clearing host bits. A bare address without "/bits"
// is rejected so that a forgotten mask is not silently read as a single host.
func ParsePrefix(item string) (netip.Prefix, error) {
	if !strings.Contains(item, "/") {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix: missing /bits (for one host write %s/32 or /128)", item, item)
	}
	p, err := netip.ParsePrefix(item)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix: %w", item, err)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix: write the IPv4 prefix instead", item)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q has an IPv6 zone, which a subnet cannot have", item)
	}
	return p.Masked(), nil
}

// Normalise returns the prefixes sorted (IPv4 before IPv6, then by address and length)
// with duplicates removed.
func Normalise(ps []netip.Prefix) []netip.Prefix {
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

// Split separates a list into its IPv4 and IPv6 prefixes, keeping order.
func Split(ps []netip.Prefix) (v4, v6 []netip.Prefix) {
	for _, p := range ps {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6
}
