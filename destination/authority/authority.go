// Package authority parses what proxies ask the destination service about: the path of a
// GetDestination request ("<svc>.<ns>.svc.<cluster-domain>:<port>", a headless pod name
// "<pod>.<svc>.<ns>.svc.<cluster-domain>:<port>", or "<ip>:<port>") and the context token
// ({"ns":"…","nodeName":"…","pod":"…"}).
package authority

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Target is a parsed GetDestination path.
type Target struct {
	// Service and Namespace name a Service (empty for an IP target).
	Service, Namespace string
	// Hostname is the pod hostname of a headless-service name, or empty.
	Hostname string
	// IP is set for "<ip>:<port>" targets.
	IP netip.Addr
	// Port is the requested port (80 when the path has none).
	Port uint32
}

// FQDN returns the Service's fully qualified name, "<svc>.<ns>.svc.<domain>".
func (t Target) FQDN(clusterDomain string) string {
	return t.Service + "." + t.Namespace + ".svc." + clusterDomain
}

// Key returns "<ns>/<svc>".
func (t Target) Key() string { return t.Namespace + "/" + t.Service }

// Parse parses a GetDestination path for a cluster whose domain is clusterDomain.
// Names outside the cluster domain are an error wrapping ErrNotInCluster.
func Parse(path, clusterDomain string) (Target, error) {
	if path == "" {
		return Target{}, fmt.Errorf("empty destination path")
	}
	if len(path) > 512 {
		return Target{}, fmt.Errorf("destination path is %d bytes long", len(path))
	}
	host, port := path, uint32(80)
	if ap, err := netip.ParseAddrPort(path); err == nil {
		return Target{IP: ap.Addr().Unmap(), Port: uint32(ap.Port())}, nil
	}
	if i := strings.LastIndexByte(path, ':'); i >= 0 {
		p, err := strconv.ParseUint(path[i+1:], 10, 16)
		if err != nil || p == 0 {
			return Target{}, fmt.Errorf("destination path %q: invalid port %q", path, path[i+1:])
		}
		host, port = path[:i], uint32(p)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return Target{IP: ip.Unmap(), Port: port}, nil
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	suffix := ".svc." + strings.ToLower(strings.TrimSuffix(clusterDomain, "."))
	rest, ok := strings.CutSuffix(host, suffix)
	if !ok {
		return Target{}, fmt.Errorf("%w: %q does not end in %q", ErrNotInCluster, path, suffix)
	}
	labels := strings.Split(rest, ".")
	for _, l := range labels {
		if !dnsLabel(l) {
			return Target{}, fmt.Errorf("destination path %q: %q is not a DNS label", path, l)
		}
	}
	switch len(labels) {
	case 2:
		return Target{Service: labels[0], Namespace: labels[1], Port: port}, nil
	case 3:
		return Target{Hostname: labels[0], Service: labels[1], Namespace: labels[2], Port: port}, nil
	}
	return Target{}, fmt.Errorf("%w: %q is not <svc>.<ns>.svc or <pod>.<svc>.<ns>.svc", ErrNotInCluster, path)
}

// ErrNotInCluster marks names the destination service does not resolve; the proxy falls
// back to the original destination.
var ErrNotInCluster = fmt.Errorf("not a cluster service name")

func dnsLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Context is the client's context token.
type Context struct {
	NS       string `json:"ns"`
	NodeName string `json:"nodeName"`
	Pod      string `json:"pod"`
}

// ParseContext parses a context token; an empty token is an empty Context.
func ParseContext(token string) (Context, error) {
	var c Context
	if strings.TrimSpace(token) == "" {
		return c, nil
	}
	if len(token) > 4096 {
		return c, fmt.Errorf("context token is %d bytes long", len(token))
	}
	if err := json.Unmarshal([]byte(token), &c); err != nil {
		return Context{}, fmt.Errorf("context token %q: %w", trunc(token), err)
	}
	return c, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
