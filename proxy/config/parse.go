package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/l5d-go/l5d/pkg/proxyconf"
)

// ParseDuration parses a duration in the proxy's environment syntax: a non-negative integer
// followed by one of the units ms, s, m, h or d ("100ms", "10s", "2m"). A bare "0" means
// zero. Unit-less non-zero values are rejected because their unit would be a guess.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("duration %q must start with a number", s)
	}
	n, err := strconv.ParseUint(s[:i], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("duration %q: number out of range", s)
	}
	var unit time.Duration
	switch s[i:] {
	case "":
		if n != 0 {
			return 0, fmt.Errorf("duration %q needs a unit (ms, s, m, h or d)", s)
		}
		return 0, nil
	case "ms":
		unit = time.Millisecond
	case "s":
		unit = time.Second
	case "m":
		unit = time.Minute
	case "h":
		unit = time.Hour
	case "d":
		unit = 24 * time.Hour
	default:
		return 0, fmt.Errorf("duration %q has unknown unit %q: want ms, s, m, h or d", s, s[i:])
	}
	return time.Duration(n) * unit, nil
}

// ParseAddrPort parses a listen or connect address "ip:port" ("0.0.0.0:4143", "[::]:4143").
func ParseAddrPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(strings.TrimSpace(s))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: want ip:port: %w", s, err)
	}
	return ap, nil
}

// ParseHostPort parses a control-plane address "host:port" where host is a DNS name or an IP
// ("linkerd-dst-headless.linkerd.svc.cluster.local.:8086"). It returns the string unchanged
// (trimmed) when valid.
func ParseHostPort(s string) (string, error) {
	s = strings.TrimSpace(s)
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", fmt.Errorf("address %q: want host:port", s)
	}
	host, port := s[:i], s[i+1:]
	if _, err := parsePort(port); err != nil {
		return "", fmt.Errorf("address %q: %w", s, err)
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", fmt.Errorf("address %q: unterminated IPv6 bracket", s)
		}
		if _, err := netip.ParseAddr(host[1 : len(host)-1]); err != nil {
			return "", fmt.Errorf("address %q: %w", s, err)
		}
		return s, nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return s, nil
	}
	if err := checkDNSName(host); err != nil {
		return "", fmt.Errorf("address %q: %w", s, err)
	}
	return s, nil
}

func checkDNSName(name string) error {
	n := strings.TrimSuffix(name, ".")
	if n == "" || len(n) > 253 {
		return fmt.Errorf("invalid host name %q", name)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("invalid host name %q: empty or over-long label", name)
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return fmt.Errorf("invalid host name %q: character %q", name, c)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("invalid host name %q: label %q starts or ends with '-'", name, label)
		}
	}
	return nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("invalid port %q: want 1-65535", s)
	}
	return uint16(n), nil
}

// ParsePorts parses a port list as every component does (proxyconf.ParsePorts: ports and
// inclusive ranges, "25,587,8000-8010") into a set for the per-connection lookups.
func ParsePorts(s string) (PortSet, error) {
	list, err := proxyconf.ParsePorts(s)
	if err != nil {
		return nil, err
	}
	set := PortSet{}
	for _, r := range list {
		for p := uint32(r.Lo); p <= uint32(r.Hi); p++ {
			set[uint16(p)] = struct{}{}
		}
	}
	return set, nil
}

// PortSet is a set of TCP ports.
type PortSet map[uint16]struct{}

// Has reports whether p is in the set.
func (s PortSet) Has(p uint16) bool { _, ok := s[p]; return ok }

// ParseNetworks parses a network list as every component does (proxyconf.ParseNetworks:
// CIDRs or bare addresses, "10.0.0.0/8,fd00::/8").
func ParseNetworks(s string) ([]netip.Prefix, error) { return proxyconf.ParseNetworks(s) }

// ParseSuffixes parses a comma-separated list of DNS suffixes ("svc.cluster.local."). Each is
// normalised to lower case with a trailing dot; "." matches every name.
func ParseSuffixes(s string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if item == "" {
			continue
		}
		if item != "." {
			if err := checkDNSName(item); err != nil {
				return nil, fmt.Errorf("suffix %q: %w", item, err)
			}
			if !strings.HasSuffix(item, ".") {
				item += "."
			}
		}
		out = append(out, item)
	}
	return out, nil
}

// ParseIPs parses a comma-separated list of IP addresses (the pod's IPs).
func ParseIPs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("IP %q: %w", item, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// ParseBool parses "true"/"false" (also 1/0, yes/no, in any case).
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("boolean %q: want true or false", s)
}

// ParseAttributes parses trace attributes as Linkerd writes them: one key=value per line,
// the value optionally in double quotes (the downward API's format for labels). Blank
// lines are skipped; a line without "=" or with an empty key is an error.
func ParseAttributes(s string) (map[string]string, error) {
	attrs := map[string]string{}
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return nil, fmt.Errorf("line %d %q: want key=value", i+1, line)
		}
		attrs[k] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return attrs, nil
}
