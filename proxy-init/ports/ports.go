// Package ports parses the port lists proxy-init accepts (the values of
// --inbound-ports-to-ignore, --outbound-ports-to-ignore and --ports-to-redirect, and of the
// config.linkerd.io/skip-*-ports annotations) and splits them into groups that fit one
// iptables multiport match.
//
// A list is comma-separated; each item is a port ("25") or an inclusive range
// ("8000-9000"). Ports are 1-65535. Spaces around items are ignored; an empty list means
// no ports.
package ports

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Range is an inclusive range of TCP ports; a single port has Lo == Hi.
type Range struct {
	Lo, Hi uint16
}

// Single returns the range holding only port p.
func Single(p uint16) Range { return Range{Lo: p, Hi: p} }

// String renders r as the list syntax accepts it: "25" or "8000-9000".
func (r Range) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// Multiport renders r as iptables' multiport match writes it: "25" or "8000:9000".
func (r Range) Multiport() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + ":" + strconv.Itoa(int(r.Hi))
}

// Contains reports whether port p lies in r.
func (r Range) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

// weight is how many of multiport's 15 slots r takes: a range takes two.
func (r Range) weight() int {
	if r.Lo == r.Hi {
		return 1
	}
	return 2
}

// List is a normalised set of port ranges: sorted by Lo, with no two ranges overlapping.
// Adjacent ranges are kept apart so that "4567,4568" stays two ports as written.
type List []Range

// String renders l in the syntax Parse accepts.
func (l List) String() string {
	parts := make([]string, len(l))
	for i, r := range l {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Contains reports whether port p lies in any range of l.
func (l List) Contains(p uint16) bool {
	for _, r := range l {
		if r.Contains(p) {
			return true
		}
	}
	return false
}

// MaxMultiport is how many ports one iptables multiport match takes; a range counts as two.
const MaxMultiport = 15

// Multiport splits l into groups each of which fits one multiport match, and renders each
// group as the match's comma-separated argument, e.g. "4190,4191,8000:9000". Order is kept.
func (l List) Multiport() []string {
	var groups []string
	var cur []string
	used := 0
	for _, r := range l {
		if used+r.weight() > MaxMultiport {
			groups = append(groups, strings.Join(cur, ","))
			cur, used = nil, 0
		}
		cur = append(cur, r.Multiport())
		used += r.weight()
	}
	if len(cur) > 0 {
		groups = append(groups, strings.Join(cur, ","))
	}
	return groups
}

// Parse reads a comma-separated list of ports and port ranges, such as
// "4190,4191,8000-9000". The result is sorted and overlapping ranges are merged. An empty
// or all-space string gives an empty list. Errors name the offending item.
func Parse(s string) (List, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var l List
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("port list %q: item %d is empty", s, i+1)
		}
		r, err := ParseRange(item)
		if err != nil {
			return nil, fmt.Errorf("port list %q: %w", s, err)
		}
		l = append(l, r)
	}
	return normalise(l), nil
}

// Join merges several lists into one normalised list.
func Join(lists ...List) List {
	var all List
	for _, l := range lists {
		all = append(all, l...)
	}
	return normalise(all)
}

// ParseRange reads one item: a port ("25") or an inclusive range ("8000-9000").
func ParseRange(item string) (Range, error) {
	lo, hi, isRange := strings.Cut(item, "-")
	if !isRange {
		p, err := parsePort(item)
		if err != nil {
			return Range{}, err
		}
		return Single(p), nil
	}
	l, err := parsePort(strings.TrimSpace(lo))
	if err != nil {
		return Range{}, fmt.Errorf("range %q: %w", item, err)
	}
	h, err := parsePort(strings.TrimSpace(hi))
	if err != nil {
		return Range{}, fmt.Errorf("range %q: %w", item, err)
	}
	if l > h {
		return Range{}, fmt.Errorf("range %q: start %d is above end %d", item, l, h)
	}
	return Range{Lo: l, Hi: h}, nil
}

// parsePort reads a decimal port number 1-65535.
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

// normalise sorts l and merges ranges that overlap.
func normalise(l List) List {
	if len(l) == 0 {
		return nil
	}
	l = slices.Clone(l)
	slices.SortFunc(l, func(a, b Range) int {
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
