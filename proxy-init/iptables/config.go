// Package iptables generates and installs the nat-table rules that send a pod's TCP traffic
// through the Linkerd proxy.
//
// Two chains are installed in the nat table of each IP family:
//
//   - PROXY_INIT_REDIRECT, jumped to from PREROUTING: connections arriving on ignored
//     inbound ports or from ignored subnets RETURN; every other TCP connection (or only the
//     --ports-to-redirect ports) is REDIRECTed to the proxy's inbound port (4143).
//   - PROXY_INIT_OUTPUT, jumped to from OUTPUT: connections made by the proxy's uid or gid,
//     connections over loopback, to ignored outbound ports or to ignored subnets RETURN;
//     every other TCP connection is REDIRECTed to the proxy's outbound port (4140).
//
// Every rule carries a "proxy-init/..." comment. Rules are fed to iptables-restore --noflush
// in one transaction per family: declaring the two chains empties them if they exist, so
// running again replaces the chains' rules, and the jumps from PREROUTING and OUTPUT are
// added only when absent. Before anything changes, the current rules of every family are
// read and the new input is checked with iptables-restore --test; if a later family fails,
// the families already changed are put back as they were.
package iptables

import (
	"fmt"
	"net/netip"

	"github.com/l5d-go/l5d/pkg/proxyconf"
)

// Chain names, as Linkerd's proxy-init uses them.
const (
	RedirectChain = "PROXY_INIT_REDIRECT"
	OutputChain   = "PROXY_INIT_OUTPUT"
)

// Linkerd's default ports and proxy user.
const (
	DefaultInboundProxyPort  = 4143
	DefaultOutboundProxyPort = 4140
	DefaultProxyUID          = 2102
)

// NoID disables the proxy uid or gid exemption.
const NoID = -1

// Family is an IP family; each has its own nat table and binaries.
type Family int

// The two IP families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Config says which rules to install.
type Config struct {
	// InboundProxyPort receives redirected inbound connections (--incoming-proxy-port).
	InboundProxyPort uint16
	// OutboundProxyPort receives redirected outbound connections (--outgoing-proxy-port).
	OutboundProxyPort uint16
	// ProxyUID and ProxyGID are the proxy's user and group; their connections are never
	// redirected outbound. NoID (-1) leaves the exemption out.
	ProxyUID, ProxyGID int64
	// PortsToRedirect limits inbound redirection to these ports; empty means all ports.
	PortsToRedirect proxyconf.Ports
	// InboundPortsToIgnore are destination ports of inbound connections left alone.
	InboundPortsToIgnore proxyconf.Ports
	// OutboundPortsToIgnore are destination ports of outbound connections left alone.
	OutboundPortsToIgnore proxyconf.Ports
	// SubnetsToIgnore are left alone both ways: inbound connections from them and outbound
	// connections to them. Each family's rules take the prefixes of that family.
	SubnetsToIgnore []netip.Prefix
}

// DefaultConfig is Linkerd's configuration without any ignored port: inbound to 4143,
// outbound to 4140, uid 2102 exempt.
func DefaultConfig() Config {
	return Config{
		InboundProxyPort:  DefaultInboundProxyPort,
		OutboundProxyPort: DefaultOutboundProxyPort,
		ProxyUID:          DefaultProxyUID,
		ProxyGID:          NoID,
	}
}

// maxID is the largest uid or gid; (uid_t)-1 itself is reserved.
const maxID = 1<<32 - 2

// Validate reports the first setting that cannot be turned into rules.
func (c Config) Validate() error {
	if c.InboundProxyPort == 0 {
		return fmt.Errorf("incoming proxy port must be 1-65535, not 0")
	}
	if c.OutboundProxyPort == 0 {
		return fmt.Errorf("outgoing proxy port must be 1-65535, not 0")
	}
	if c.ProxyUID != NoID && (c.ProxyUID < 0 || c.ProxyUID > maxID) {
		return fmt.Errorf("proxy uid %d is not a user id (0-%d, or -1 for none)", c.ProxyUID, int64(maxID))
	}
	if c.ProxyGID != NoID && (c.ProxyGID < 0 || c.ProxyGID > maxID) {
		return fmt.Errorf("proxy gid %d is not a group id (0-%d, or -1 for none)", c.ProxyGID, int64(maxID))
	}
	for _, p := range c.SubnetsToIgnore {
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return fmt.Errorf("subnet %v is not a plain masked CIDR prefix", p)
		}
	}
	return nil
}

// subnetsOf returns the ignored subnets of family f.
func (c Config) subnetsOf(f Family) []netip.Prefix {
	v4, v6 := proxyconf.SplitNetworks(c.SubnetsToIgnore)
	if f == IPv6 {
		return v6
	}
	return v4
}
