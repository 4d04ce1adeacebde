package iptables

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Backend names the binaries that read and write one family's rules.
type Backend struct {
	Family  Family
	Save    string // e.g. iptables-legacy-save
	Restore string // e.g. iptables-legacy-restore
}

// The iptables modes Linkerd's proxyInit.iptablesMode accepts.
const (
	ModeLegacy = "legacy"
	ModeNFT    = "nft"
)

// ModeBinary returns the iptables binary of mode "legacy" (iptables-legacy) or "nft"
// (iptables-nft).
func ModeBinary(mode string) (string, error) {
	switch mode {
	case ModeLegacy, ModeNFT:
		return "iptables-" + mode, nil
	default:
		return "", fmt.Errorf("iptables mode %q is not supported: want %q or %q", mode, ModeLegacy, ModeNFT)
	}
}

// ModeBackends returns the backends of mode "legacy" (iptables-legacy-save and
// iptables-legacy-restore, ip6tables-legacy-…) or "nft" (iptables-nft-…, ip6tables-nft-…);
// the IPv6 backend is left out unless ipv6 is set.
func ModeBackends(mode string, ipv6 bool) ([]Backend, error) {
	bin, err := ModeBinary(mode)
	if err != nil {
		return nil, err
	}
	return PathBackends(bin, bin+"-save", ipv6)
}

// PathBackends returns backends derived from the iptables binary (--firewall-bin-path, e.g.
// "iptables-nft" or "/usr/sbin/iptables") and its save binary (--firewall-save-bin-path):
// the restore binary is the iptables binary's name plus "-restore" in the same directory,
// and the IPv6 binaries replace the leading "iptables" of each name with "ip6tables".
func PathBackends(bin, save string, ipv6 bool) ([]Backend, error) {
	if strings.TrimSpace(bin) == "" {
		return nil, fmt.Errorf("firewall binary path is empty")
	}
	if strings.TrimSpace(save) == "" {
		return nil, fmt.Errorf("firewall save binary path is empty")
	}
	v4 := Backend{Family: IPv4, Save: save, Restore: bin + "-restore"}
	bs := []Backend{v4}
	if !ipv6 {
		return bs, nil
	}
	restore6, err := ip6Name(v4.Restore)
	if err != nil {
		return nil, err
	}
	save6, err := ip6Name(save)
	if err != nil {
		return nil, err
	}
	return append(bs, Backend{Family: IPv6, Save: save6, Restore: restore6}), nil
}

// ip6Name turns ".../iptables-xyz" into ".../ip6tables-xyz".
func ip6Name(path string) (string, error) {
	dir, base := filepath.Split(path)
	rest, ok := strings.CutPrefix(base, "iptables")
	if !ok {
		return "", fmt.Errorf("cannot tell the ip6tables binary for %q: its name does not start with \"iptables\" (disable IPv6 rules with --ipv6=false)", path)
	}
	return dir + "ip6tables" + rest, nil
}
