// Package outbound serves io.linkerd.proxy.outbound.OutboundPolicies: for a Service
// authority or an address it answers how the client proxy routes the traffic — protocol
// detection with one default HTTP route to the Service, an opaque route when the port is
// opaque, or an opaque forward to an address that is no known Service.
package outbound

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Target is a parsed TrafficSpec target: a Service authority (Name, Namespace, Port) or an
// address (Addr valid, Name empty).
type Target struct {
	Name, Namespace string
	Port            uint16
	Addr            netip.AddrPort
}

// ParseAuthority parses "<svc>.<ns>.svc.<cluster-domain>:<port>" with the given cluster
// domain (for example "cluster.local").
func ParseAuthority(authority, clusterDomain string) (Target, error) {
	host, portText, ok := strings.Cut(authority, ":")
	if !ok {
		return Target{}, fmt.Errorf("authority %q has no port", authority)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return Target{}, fmt.Errorf("authority %q: port %q is not a TCP port", authority, portText)
	}
	host = strings.TrimSuffix(host, ".")
	suffix := ".svc." + clusterDomain
	if !strings.HasSuffix(host, suffix) {
		return Target{}, fmt.Errorf("authority %q is not a Service name ending in %q", authority, suffix)
	}
	parts := strings.Split(strings.TrimSuffix(host, suffix), ".")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return Target{}, fmt.Errorf("authority %q: want <service>.<namespace>%s", authority, suffix)
	}
	return Target{Name: parts[0], Namespace: parts[1], Port: uint16(port)}, nil
}
