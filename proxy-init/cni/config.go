// Package cni is the logic of the linkerd-cni plugin: it reads the plugin's network
// configuration (Linkerd's format, chained after the cluster's primary plugin), decides from
// the pod whether it is meshed, and turns the configuration and the pod's annotations into
// the same iptables.Config proxy-init's flags give the linkerd-init container.
package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/proxy-init/iptables"
)

// PluginType is the plugin's binary name and the "type" of its configuration.
const PluginType = "linkerd-cni"

// NetConf is the plugin's configuration as the container runtime passes it on stdin: the
// standard fields, the previous plugin's result and Linkerd's own sections.
type NetConf struct {
	types.PluginConf
	// LogLevel is debug, info, warn or error (default info); logs go to stderr, which
	// the container runtime records.
	LogLevel string `json:"log_level,omitempty"`
	// Kubernetes says how to reach the API server to read the pod.
	Kubernetes Kubernetes `json:"kubernetes"`
	// Linkerd is proxy-init's configuration, shared by every pod on the node.
	Linkerd ProxyInit `json:"linkerd"`
}

// Kubernetes is the "kubernetes" section.
type Kubernetes struct {
	// Kubeconfig is the kubeconfig file the linkerd-cni DaemonSet writes on the node.
	Kubeconfig string `json:"kubeconfig"`
}

// ProxyInit is the "linkerd" section, with the names and meaning of proxy-init's flags.
// Ports are numbers or strings; lists of ports take single ports and ranges ("8000-9000").
type ProxyInit struct {
	IncomingProxyPort     int      `json:"incoming-proxy-port"`
	OutgoingProxyPort     int      `json:"outgoing-proxy-port"`
	ProxyUID              *int64   `json:"proxy-uid"`
	ProxyGID              *int64   `json:"proxy-gid"`
	PortsToRedirect       PortList `json:"ports-to-redirect"`
	InboundPortsToIgnore  PortList `json:"inbound-ports-to-ignore"`
	OutboundPortsToIgnore PortList `json:"outbound-ports-to-ignore"`
	SubnetsToIgnore       []string `json:"subnets-to-ignore"`
	Simulate              bool     `json:"simulate"`
	UseWaitFlag           bool     `json:"use-wait-flag"`
	IPTablesMode          string   `json:"iptables-mode"`
	IPv6                  bool     `json:"ipv6"`
}

// PortList is a JSON array of ports and ranges, each a number or a string, as Linkerd's
// configuration writes them (["4190","4191"] or [4190, 4191]).
type PortList []string

// UnmarshalJSON accepts numbers and strings.
func (l *PortList) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("want a list of ports: %w", err)
	}
	out := make(PortList, 0, len(raw))
	for _, r := range raw {
		var s string
		if err := json.Unmarshal(r, &s); err == nil {
			out = append(out, s)
			continue
		}
		var n json.Number
		if err := json.Unmarshal(r, &n); err != nil {
			return fmt.Errorf("port %s is neither a number nor a string", r)
		}
		out = append(out, n.String())
	}
	*l = out
	return nil
}

// parse turns the list into a proxyconf.Ports; name is the setting, for the error.
func (l PortList) parse(name string) (proxyconf.Ports, error) {
	list, err := proxyconf.ParsePorts(strings.Join(l, ","))
	if err != nil {
		return nil, fmt.Errorf("linkerd.%s: %w", name, err)
	}
	return list, nil
}

// Settings is a parsed and checked NetConf: what ADD and DEL need.
type Settings struct {
	Conf *NetConf
	// Base is the rules' configuration before the pod's annotations.
	Base iptables.Config
	// Backends are the iptables binaries of the configured mode.
	Backends []iptables.Backend
}

// Parse reads the plugin's configuration from stdin's bytes, fills Linkerd's defaults and
// checks every setting; the error names the first bad one.
func Parse(stdin []byte) (*Settings, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, fmt.Errorf("parsing the network configuration: %w", err)
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
			return nil, fmt.Errorf("parsing prevResult: %w", err)
		}
	}
	if conf.Kubernetes.Kubeconfig == "" {
		return nil, errors.New("kubernetes.kubeconfig is not set: the plugin needs it to read the pod")
	}
	li := conf.Linkerd
	base := iptables.DefaultConfig()
	for _, p := range []struct {
		name string
		v    int
		dst  *uint16
	}{
		{"incoming-proxy-port", li.IncomingProxyPort, &base.InboundProxyPort},
		{"outgoing-proxy-port", li.OutgoingProxyPort, &base.OutboundProxyPort},
	} {
		switch {
		case p.v == 0:
		case p.v < 1 || p.v > 65535:
			return nil, fmt.Errorf("linkerd.%s %d: must be a TCP port, 1-65535", p.name, p.v)
		default:
			*p.dst = uint16(p.v)
		}
	}
	if li.ProxyUID != nil {
		base.ProxyUID = *li.ProxyUID
	}
	if li.ProxyGID != nil {
		base.ProxyGID = *li.ProxyGID
	}
	var err error
	if base.PortsToRedirect, err = li.PortsToRedirect.parse("ports-to-redirect"); err != nil {
		return nil, err
	}
	if base.InboundPortsToIgnore, err = li.InboundPortsToIgnore.parse("inbound-ports-to-ignore"); err != nil {
		return nil, err
	}
	if base.OutboundPortsToIgnore, err = li.OutboundPortsToIgnore.parse("outbound-ports-to-ignore"); err != nil {
		return nil, err
	}
	if base.SubnetsToIgnore, err = proxyconf.ParseNetworks(strings.Join(li.SubnetsToIgnore, ",")); err != nil {
		return nil, fmt.Errorf("linkerd.subnets-to-ignore: %w", err)
	}
	if err := base.Validate(); err != nil {
		return nil, fmt.Errorf("linkerd: %w", err)
	}
	mode := li.IPTablesMode
	if mode == "" {
		mode = iptables.ModeLegacy
	}
	backends, err := iptables.ModeBackends(mode, li.IPv6)
	if err != nil {
		return nil, fmt.Errorf("linkerd.iptables-mode: %w", err)
	}
	return &Settings{Conf: conf, Base: base, Backends: backends}, nil
}

// PodConfig returns the rules' configuration for a pod with these annotations (the pod's,
// then its namespace's for keys the pod lacks, as the injector resolves them): the
// configured lists are extended with config.linkerd.io/skip-inbound-ports,
// skip-outbound-ports and skip-subnets, and config.linkerd.io/proxy-uid replaces the uid.
// The error names the annotation that cannot be used.
func PodConfig(base iptables.Config, podAnn, nsAnn map[string]string) (iptables.Config, error) {
	get := func(key string) (string, bool) {
		if v, ok := podAnn[key]; ok {
			return strings.TrimSpace(v), true
		}
		v, ok := nsAnn[key]
		return strings.TrimSpace(v), ok
	}
	cfg := base
	bad := func(key, val string, err error) error {
		return fmt.Errorf("annotation %s=%q: %w", key, val, err)
	}
	for _, a := range []struct {
		key string
		dst *proxyconf.Ports
	}{
		{proxyconf.AnnSkipInboundPorts, &cfg.InboundPortsToIgnore},
		{proxyconf.AnnSkipOutboundPorts, &cfg.OutboundPortsToIgnore},
	} {
		if v, ok := get(a.key); ok && v != "" {
			l, err := proxyconf.ParsePorts(v)
			if err != nil {
				return iptables.Config{}, bad(a.key, v, err)
			}
			*a.dst = proxyconf.JoinPorts(*a.dst, l)
		}
	}
	if v, ok := get(proxyconf.AnnSkipSubnets); ok && v != "" {
		ps, err := proxyconf.ParseNetworks(v)
		if err != nil {
			return iptables.Config{}, bad(proxyconf.AnnSkipSubnets, v, err)
		}
		cfg.SubnetsToIgnore = append(append([]netip.Prefix(nil), cfg.SubnetsToIgnore...), ps...)
	}
	if v, ok := get(proxyconf.AnnProxyUID); ok && v != "" {
		uid, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return iptables.Config{}, bad(proxyconf.AnnProxyUID, v, errors.New("not a user id"))
		}
		cfg.ProxyUID = uid
	}
	if err := cfg.Validate(); err != nil {
		return iptables.Config{}, fmt.Errorf("the pod's annotations give unusable rules: %w", err)
	}
	return cfg, nil
}
