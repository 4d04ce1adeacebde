package iptables

import (
	"strconv"
	"strings"

	"github.com/l5d-go/l5d/pkg/proxyconf"
)

// maxMultiport is how many ports one iptables multiport match takes; a range counts as two.
const maxMultiport = 15

// multiport splits l into groups each of which fits one multiport match, and renders each
// group as the match's comma-separated argument, e.g. "4190,4191,8000:9000". Order is kept.
func multiport(l proxyconf.Ports) []string {
	var groups []string
	var cur []string
	used := 0
	for _, r := range l {
		weight, item := 1, strconv.Itoa(int(r.Lo))
		if r.Lo != r.Hi {
			weight, item = 2, item+":"+strconv.Itoa(int(r.Hi))
		}
		if used+weight > maxMultiport {
			groups = append(groups, strings.Join(cur, ","))
			cur, used = nil, 0
		}
		cur = append(cur, item)
		used += weight
	}
	if len(cur) > 0 {
		groups = append(groups, strings.Join(cur, ","))
	}
	return groups
}
