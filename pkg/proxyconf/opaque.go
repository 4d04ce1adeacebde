package proxyconf

import (
	"fmt"
	"strings"
)

// DefaultOpaquePorts is the default of the control plane's opaque ports (proxy.opaquePorts in
// the chart, the destination and policy controllers' --default-opaque-ports, the proxy's
// LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION): SMTP, MySQL, Galera, PostgreSQL,
// Redis, Elasticsearch and Memcached, protocols where the server speaks first.
const DefaultOpaquePorts = "25,587,3306,4444,5432,6379,9300,11211"

// DefaultSkipPorts is the default of proxyInit.ignoreInboundPorts and ignoreOutboundPorts:
// Galera's replication ports, which must bypass the proxy.
const DefaultSkipPorts = "4567,4568"

// NamedPorts resolves a port name to its number: a pod's container port names, or a
// Service's port names. nil resolves nothing.
type NamedPorts func(name string) (uint16, bool)

// ParseOpaquePorts reads the value of config.linkerd.io/opaque-ports as Linkerd does: a
// comma-separated list of ports, ranges and port names. A name is looked up first (a name
// such as "123-456" is also a valid range, and the name wins), through named; items that are
// neither a known name nor a valid port or range are skipped, each reported in skipped so
// the caller can warn, and the rest still apply. The result is normalised like ParsePorts'.
func ParseOpaquePorts(value string, named NamedPorts) (l Ports, skipped []error) {
	for item := range strings.SplitSeq(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if named != nil {
			if p, ok := named(item); ok {
				l = append(l, SinglePort(p))
				continue
			}
		}
		r, err := ParsePortRange(item)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("opaque port %q: %w", item, err))
			continue
		}
		l = append(l, r)
	}
	return normalisePorts(l), skipped
}
