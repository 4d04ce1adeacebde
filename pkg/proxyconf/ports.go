package proxyconf

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of TCP ports; a single port has Lo == Hi.
type PortRange struct {
	Lo, Hi uint16
}

// SinglePort returns the range holding only port p.
func SinglePort(p uint16) PortRange { return PortRange{Lo: p, Hi: p} }

// String renders r as ParsePorts reads it: "25" or "8000-9000".
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// Contains reports whether port p lies in r.
func (r PortRange) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

// Ports is a normalised set of port ranges: sorted by Lo, no two ranges overlapping.
// Adjacent ranges are kept apart so that "4567,4568" stays two ports as written.
type Ports []PortRange

// String renders l in the syntax ParsePorts reads.
func (l Ports) String() string {
	parts := make([]string, len(l))
	for i, r := range l {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Contains reports whether port p lies in any range of l.
func (l Ports) Contains(p uint16) bool {
	for _, r := range l {
		if r.Contains(p) {
			return true
		}
	}
	return false
}

// ParsePorts reads a comma-separated list of ports and inclusive port ranges, the syntax of
// every port-list annotation and variable (config.linkerd.io/skip-inbound-ports,
// opaque-ports, LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION, proxy-init's flags):
// "25,587,8000-9000". Ports are 1-65535; spaces around items and empty items (a trailing
// comma) are ignored; overlapping ranges are merged and the result is sorted. Any other
// malformed item is an error naming it: the lists decide what is redirected and authorized,
// so nothing is guessed.
func ParsePorts(s string) (Ports, error) {
	var l Ports
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		r, err := ParsePortRange(item)
		if err != nil {
			return nil, fmt.Errorf("port list %q: %w", s, err)
		}
		l = append(l, r)
	}
	return normalisePorts(l), nil
}

// JoinPorts merges several lists into one normalised list.
func JoinPorts(lists ...Ports) Ports {
	var all Ports
	for _, l := range lists {
		all = append(all, l...)
	}
	return normalisePorts(all)
}

// ParsePortRange reads one item: a port ("25") or an inclusive range ("8000-9000").
func ParsePortRange(item string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(item, "-")
	if !isRange {
		p, err := parsePort(item)
		if err != nil {
			return PortRange{}, err
		}
		return SinglePort(p), nil
	}
	l, err := parsePort(strings.TrimSpace(lo))
	if err != nil {
		return PortRange{}, fmt.Errorf("range %q: %w", item, err)
	}
	h, err := parsePort(strings.TrimSpace(hi))
	if err != nil {
		return PortRange{}, fmt.Errorf("range %q: %w", item, err)
	}
	if l > h {
		return PortRange{}, fmt.Errorf("range %q: start %d is above end %d", item, l, h)
	}
	return PortRange{Lo: l, Hi: h}, nil
}

// parsePort reads a decimal port number 1-65535 (digits only: no sign, no spaces).
func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("missing port number")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a port number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is out of range 1-65535", s)
	}
	return uint16(n), nil
}

// normalisePorts sorts l and merges ranges that overlap.
func normalisePorts(l Ports) Ports {
	if len(l) == 0 {
		return nil
	}
	l = slices.Clone(l)
	slices.SortFunc(l, func(a, b PortRange) int {
		if c := cmp.Compare(a.Lo, b.Lo); c != 0 {
			return c
		}
		return cmp.Compare(a.Hi, b.Hi)
	})
	out := l[:1]
	for _, r := range l[1:] {
		last := &out[len(out)-1]
		if r.Lo <= last.Hi {
			last.Hi = max(last.Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}
