// Package network reads the networks of a NetworkAuthentication: a CIDR with the sub-networks
// excluded from it, each read as every component reads a network (proxyconf.ParseNetwork).
// User input at a trust boundary, so every failure names the offending value.
package network

import (
	"fmt"
	"net/netip"

	"github.com/l5d-go/l5d/pkg/proxyconf"
)

// Network is one allowed network with the sub-networks excluded from it.
type Network struct {
	Net    netip.Prefix
	Except []netip.Prefix
}

// Parse parses a network and its exceptions. Any unparsable exception is an error: dropping
// it would silently widen what the network allows.
func Parse(cidr string, except []string) (Network, error) {
	p, err := proxyconf.ParseNetwork(cidr)
	if err != nil {
		return Network{}, fmt.Errorf("cidr: %w", err)
	}
	n := Network{Net: p}
	for i, e := range except {
		ep, err := proxyconf.ParseNetwork(e)
		if err != nil {
			return Network{}, fmt.Errorf("except[%d]: %w", i, err)
		}
		n.Except = append(n.Except, ep)
	}
	return n, nil
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
