// Package config reads the proxy's configuration from LINKERD2_PROXY_* environment
// variables, with Linkerd's defaults. A variable that is set but invalid is an error that
// names the variable, so the proxy stops at start with an actionable message.
package config

import (
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/proxy/accesslog"
)

// Environment variable names. Those the injector sets are Linkerd's; the L5D_PROXY_* ones
// are this proxy's own additions.
const (
	EnvLog       = proxyconf.EnvLog
	EnvLogFormat = proxyconf.EnvLogFormat

	EnvAdminListenAddr    = proxyconf.EnvAdminListenAddr
	EnvControlListenAddr  = proxyconf.EnvControlListenAddr
	EnvInboundListenAddr  = proxyconf.EnvInboundListenAddr
	EnvOutboundListenAddr = proxyconf.EnvOutboundListenAddr
	// The plural forms list every address, for dual-stack pods (for example
	// "127.0.0.1:4140,[::1]:4140"); when set they take precedence over the singular ones.
	EnvInboundListenAddrs  = proxyconf.EnvInboundListenAddrs
	EnvOutboundListenAddrs = proxyconf.EnvOutboundListenAddrs

	EnvInboundConnectTimeout   = proxyconf.EnvInboundConnectTimeout
	EnvOutboundConnectTimeout  = proxyconf.EnvOutboundConnectTimeout
	EnvInboundAcceptKeepalive  = proxyconf.EnvInboundAcceptKeepalive
	EnvOutboundAcceptKeepalive = proxyconf.EnvOutboundAcceptKeepalive
	EnvInboundConnectKeepalive = proxyconf.EnvInboundConnectKeepalive
	EnvOutboundConnectKeepalv  = proxyconf.EnvOutboundConnectKeepalive
	EnvInboundDetectTimeout    = proxyconf.EnvInboundDetectTimeout
	EnvOutboundDetectTimeout   = proxyconf.EnvOutboundDetectTimeout

	EnvInboundDisableDetection  = proxyconf.EnvInboundDisableDetection
	EnvOutboundDisableDetection = proxyconf.EnvOutboundDisableDetection
	EnvInboundIPs               = proxyconf.EnvInboundIPs
	EnvInboundPorts             = proxyconf.EnvInboundPorts
	EnvInboundPortsRequireID    = proxyconf.EnvInboundPortsRequireID
	EnvInboundPortsRequireTLS   = proxyconf.EnvInboundPortsRequireTLS

	EnvOutboundHTTPQueueCapacity = proxyconf.EnvOutboundHTTPQueueCapacity
	EnvOutboundHTTPFailfast      = proxyconf.EnvOutboundHTTPFailfast
	EnvOutboundTCPQueueCapacity  = proxyconf.EnvOutboundTCPQueueCapacity
	EnvOutboundTCPFailfast       = proxyconf.EnvOutboundTCPFailfast
	EnvInboundHTTPQueueCapacity  = proxyconf.EnvInboundHTTPQueueCapacity
	EnvInboundHTTPFailfast       = proxyconf.EnvInboundHTTPFailfast
	EnvOutboundDiscoveryIdle     = proxyconf.EnvOutboundDiscoveryIdle
	EnvInboundDiscoveryIdle      = proxyconf.EnvInboundDiscoveryIdle

	EnvDestinationAddr            = proxyconf.EnvDestinationAddr
	EnvDestinationName            = proxyconf.EnvDestinationName
	EnvDestinationContext         = proxyconf.EnvDestinationContext
	EnvDestinationProfileSuffixes = proxyconf.EnvDestinationProfileSuffixes
	EnvDestinationProfileNetworks = proxyconf.EnvDestinationProfileNetworks
	EnvInboundGatewaySuffixes     = proxyconf.EnvInboundGatewaySuffixes

	EnvPolicyAddr            = proxyconf.EnvPolicyAddr
	EnvPolicyName            = proxyconf.EnvPolicyName
	EnvPolicyWorkload        = proxyconf.EnvPolicyWorkload
	EnvInboundDefaultPolicy  = proxyconf.EnvInboundDefaultPolicy
	EnvPolicyClusterNetworks = proxyconf.EnvPolicyClusterNetworks

	EnvIdentityDisabled     = proxyconf.EnvIdentityDisabled
	EnvIdentityDir          = proxyconf.EnvIdentityDir
	EnvIdentityTrustAnchors = proxyconf.EnvIdentityTrustAnchors
	EnvIdentityTokenFile    = proxyconf.EnvIdentityTokenFile
	EnvIdentityAddr         = proxyconf.EnvIdentityAddr
	EnvIdentityName         = proxyconf.EnvIdentityName
	EnvIdentityLocalName    = proxyconf.EnvIdentityLocalName
	EnvTapName              = proxyconf.EnvTapName

	EnvShutdownEndpointEnabled = proxyconf.EnvShutdownEndpointEnabled
	EnvShutdownGracePeriod     = proxyconf.EnvShutdownGracePeriod
	EnvCores                   = proxyconf.EnvCores
	EnvCoresMaxRatio           = proxyconf.EnvCoresMaxRatio
	EnvAccessLog               = proxyconf.EnvAccessLog
	EnvIngressMode             = proxyconf.EnvIngressMode

	EnvTraceCollectorAddr   = proxyconf.EnvTraceCollectorAddr
	EnvTraceCollectorName   = proxyconf.EnvTraceCollectorName
	EnvTraceProtocol        = proxyconf.EnvTraceProtocol
	EnvTraceServiceName     = proxyconf.EnvTraceServiceName
	EnvTraceAttributesPath  = proxyconf.EnvTraceAttributesPath
	EnvTraceExtraAttributes = proxyconf.EnvTraceExtraAttributes

	// EnvOutboundFallbackDst and EnvInboundFallbackDst give the original destination to
	// use when SO_ORIGINAL_DST cannot provide one (no iptables redirect: tests, benchmarks,
	// hand-run proxies). Unset means such connections are refused.
	EnvOutboundFallbackDst = "L5D_PROXY_OUTBOUND_ORIG_DST"
	EnvInboundFallbackDst  = "L5D_PROXY_INBOUND_ORIG_DST"
	// EnvMemoryLimit is a soft Go heap limit in bytes (or with a KiB/MiB/GiB suffix);
	// DefaultMemoryLimit when unset, "0" for none.
	EnvMemoryLimit = "L5D_PROXY_MEMORY_LIMIT"
)

// Defaults, as in Linkerd.
const (
	DefaultLog                = "warn,linkerd=info"
	DefaultAdminListenAddr    = "0.0.0.0:4191"
	DefaultControlListenAddr  = "0.0.0.0:4190"
	DefaultInboundListenAddr  = "0.0.0.0:4143"
	DefaultOutboundListenAddr = "127.0.0.1:4140"
	DefaultProfileSuffixes    = "svc.cluster.local."
	DefaultPrivateNetworks    = "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16"
	DefaultMemoryLimit        = 16 << 20
	DefaultTraceServiceName   = "linkerd-proxy"
)

// LogFormat is plain or json.
type LogFormat string

// Log formats.
const (
	LogPlain LogFormat = "plain"
	LogJSON  LogFormat = "json"
)

// Direction holds the settings that exist once for inbound and once for outbound.
type Direction struct {
	// ListenAddr is where the proxy accepts this direction's connections.
	ListenAddr netip.AddrPort
	// MoreListenAddrs are further addresses accepting the same connections (the rest of
	// a LINKERD2_PROXY_*_LISTEN_ADDRS list).
	MoreListenAddrs []netip.AddrPort
	// ConnectTimeout bounds dialling an endpoint or the application.
	ConnectTimeout time.Duration
	// AcceptKeepalive and ConnectKeepalive are TCP keepalive periods (0 disables).
	AcceptKeepalive, ConnectKeepalive time.Duration
	// DetectTimeout bounds protocol detection; the connection is then opaque TCP.
	DetectTimeout time.Duration
	// OpaquePorts skip protocol detection.
	OpaquePorts PortSet
	// QueueCapacity is the per-backend request queue size; QueueFailfast is how long a
	// request may wait for an endpoint before the backend fails fast.
	QueueCapacity int
	QueueFailfast time.Duration
	// TCPQueueCapacity and TCPFailfast are the same for opaque connections.
	TCPQueueCapacity int
	TCPFailfast      time.Duration
	// DiscoveryIdleTimeout is how long an unused discovery stream is kept.
	DiscoveryIdleTimeout time.Duration
	// FallbackDst, when valid, is the original destination used for connections whose
	// SO_ORIGINAL_DST is unavailable.
	FallbackDst netip.AddrPort
}

// Config is the whole proxy configuration.
type Config struct {
	// LogFilter is the raw LINKERD2_PROXY_LOG value; LogLevel the level it gives the proxy.
	LogFilter string
	LogLevel  slog.Level
	LogFormat LogFormat

	AdminListenAddr   netip.AddrPort
	ControlListenAddr netip.AddrPort
	Inbound, Outbound Direction

	// InboundIPs are the pod's IPs; InboundPorts the application's container ports.
	InboundIPs   []netip.Addr
	InboundPorts PortSet
	// RequireIdentityPorts are inbound ports that only serve mesh TLS connections with a
	// verified client identity; RequireTLSPorts those that only serve mesh TLS (with or
	// without a client identity). Other connections to them are closed.
	RequireIdentityPorts, RequireTLSPorts PortSet

	// DestinationAddr is the Destination service host:port; empty disables discovery.
	DestinationAddr    string
	DestinationName    string
	DestinationContext string
	// ProfileSuffixes are the DNS suffixes for which names are resolved through discovery;
	// ProfileNetworks the IP networks for which addresses are.
	ProfileSuffixes []string
	ProfileNetworks []netip.Prefix
	// GatewaySuffixes (LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES, which the injector sets
	// for config.linkerd.io/enable-gateway) turn on the multicluster gateway mode: mesh
	// TLS connections addressed to the inbound proxy itself are forwarded to the Service
	// they name when the name ends in one of these suffixes (see package gateway). Empty:
	// not a gateway.
	GatewaySuffixes []string

	PolicyAddr           string
	PolicyName           string
	PolicyWorkload       string
	InboundDefaultPolicy string
	ClusterNetworks      []netip.Prefix

	IdentityDisabled     bool
	IdentityDir          string
	IdentityTrustAnchors string
	IdentityTokenFile    string
	IdentityAddr         string
	IdentityName         string
	IdentityLocalName    string
	TapName              string

	// ShutdownEndpoint enables POST /shutdown on the admin server.
	ShutdownEndpoint bool
	// ShutdownGracePeriod bounds draining on shutdown.
	ShutdownGracePeriod time.Duration
	// Cores is how many cores (GOMAXPROCS) the proxy uses (0: unset, one, as Linkerd's
	// proxy; see Workers).
	Cores int
	// CoresMaxRatio, when above 0 and Cores is 0, caps GOMAXPROCS at this share of the
	// node's CPUs (rounded, at least 1): Linkerd's proxy-cpu-ratio-limit.
	CoresMaxRatio float64
	// MemoryLimit is the soft Go memory limit in bytes (0: none).
	MemoryLimit int64
	// AccessLog is the format of the inbound HTTP access log written to stderr
	// (LINKERD2_PROXY_ACCESS_LOG: apache or json); 0 when there is none.
	AccessLog accesslog.Format
	// IngressMode routes outbound requests by their l5d-dst-override header
	// (LINKERD2_PROXY_INGRESS_MODE, set for linkerd.io/inject: ingress).
	IngressMode bool

	// Trace configures distributed tracing; its CollectorAddr is empty when it is off.
	Trace Trace
}

// Trace is where and as what the proxy exports the spans of sampled requests.
type Trace struct {
	// CollectorAddr is the OTLP collector's host:port; empty disables tracing.
	CollectorAddr string
	// CollectorName is the collector's mesh identity, verified over mutual TLS.
	CollectorName string
	// ServiceName is the spans' service.name (DefaultTraceServiceName).
	ServiceName string
	// AttributesPath is a file of key="value" lines (the pod's labels through the
	// downward API) added to the spans' resource, read once at start.
	AttributesPath string
	// ExtraAttributes are further resource attributes; they win over the file's.
	ExtraAttributes map[string]string
}

// FromEnviron reads the configuration from the process environment.
func FromEnviron() (*Config, error) { return Load(os.LookupEnv) }

// Load reads the configuration through lookup (os.LookupEnv in production). The error
// names the first invalid variable and why it is invalid.
func Load(lookup func(string) (string, bool)) (*Config, error) {
	r := reader{lookup: lookup}
	c := &Config{}

	c.LogFilter = r.str(EnvLog, DefaultLog)
	r.parse(EnvLog, DefaultLog, func(s string) (err error) { c.LogLevel, err = ParseLogLevel(s); return })
	r.parse(EnvLogFormat, "plain", func(s string) error {
		switch f := LogFormat(strings.ToLower(strings.TrimSpace(s))); f {
		case LogPlain, LogJSON:
			c.LogFormat = f
			return nil
		}
		return fmt.Errorf("unknown log format %q: want plain or json", s)
	})

	r.addr(EnvAdminListenAddr, DefaultAdminListenAddr, &c.AdminListenAddr)
	r.addr(EnvControlListenAddr, DefaultControlListenAddr, &c.ControlListenAddr)
	r.addr(EnvInboundListenAddr, DefaultInboundListenAddr, &c.Inbound.ListenAddr)
	r.addr(EnvOutboundListenAddr, DefaultOutboundListenAddr, &c.Outbound.ListenAddr)
	for _, d := range []struct {
		env string
		dir *Direction
	}{{EnvInboundListenAddrs, &c.Inbound}, {EnvOutboundListenAddrs, &c.Outbound}} {
		r.parse(d.env, "", func(s string) error {
			var addrs []netip.AddrPort
			for _, item := range strings.Split(s, ",") {
				if strings.TrimSpace(item) == "" {
					continue
				}
				a, err := ParseAddrPort(item)
				if err != nil {
					return err
				}
				addrs = append(addrs, a)
			}
			if len(addrs) == 0 {
				return fmt.Errorf("no address")
			}
			d.dir.ListenAddr, d.dir.MoreListenAddrs = addrs[0], addrs[1:]
			return nil
		})
	}

	r.dur(EnvInboundConnectTimeout, "100ms", &c.Inbound.ConnectTimeout)
	r.dur(EnvOutboundConnectTimeout, "1000ms", &c.Outbound.ConnectTimeout)
	r.dur(EnvInboundAcceptKeepalive, "10s", &c.Inbound.AcceptKeepalive)
	r.dur(EnvOutboundAcceptKeepalive, "10s", &c.Outbound.AcceptKeepalive)
	r.dur(EnvInboundConnectKeepalive, "10s", &c.Inbound.ConnectKeepalive)
	r.dur(EnvOutboundConnectKeepalv, "10s", &c.Outbound.ConnectKeepalive)
	r.dur(EnvInboundDetectTimeout, "10s", &c.Inbound.DetectTimeout)
	r.dur(EnvOutboundDetectTimeout, "10s", &c.Outbound.DetectTimeout)

	r.ports(EnvInboundDisableDetection, proxyconf.DefaultOpaquePorts, &c.Inbound.OpaquePorts)
	r.ports(EnvOutboundDisableDetection, proxyconf.DefaultOpaquePorts, &c.Outbound.OpaquePorts)
	r.parse(EnvInboundIPs, "", func(s string) (err error) { c.InboundIPs, err = ParseIPs(s); return })
	r.ports(EnvInboundPorts, "", &c.InboundPorts)
	r.ports(EnvInboundPortsRequireID, "", &c.RequireIdentityPorts)
	r.ports(EnvInboundPortsRequireTLS, "", &c.RequireTLSPorts)

	r.count(EnvOutboundHTTPQueueCapacity, "100", &c.Outbound.QueueCapacity)
	r.dur(EnvOutboundHTTPFailfast, "3s", &c.Outbound.QueueFailfast)
	r.count(EnvOutboundTCPQueueCapacity, "100", &c.Outbound.TCPQueueCapacity)
	r.dur(EnvOutboundTCPFailfast, "3s", &c.Outbound.TCPFailfast)
	r.count(EnvInboundHTTPQueueCapacity, "100", &c.Inbound.QueueCapacity)
	r.dur(EnvInboundHTTPFailfast, "1s", &c.Inbound.QueueFailfast)
	c.Inbound.TCPQueueCapacity, c.Inbound.TCPFailfast = c.Inbound.QueueCapacity, c.Inbound.QueueFailfast
	r.dur(EnvOutboundDiscoveryIdle, "5s", &c.Outbound.DiscoveryIdleTimeout)
	r.dur(EnvInboundDiscoveryIdle, "90s", &c.Inbound.DiscoveryIdleTimeout)

	r.hostPort(EnvDestinationAddr, &c.DestinationAddr)
	c.DestinationName = r.str(EnvDestinationName, "")
	c.DestinationContext = r.str(EnvDestinationContext, "")
	r.parse(EnvDestinationProfileSuffixes, DefaultProfileSuffixes, func(s string) (err error) {
		c.ProfileSuffixes, err = ParseSuffixes(s)
		return
	})
	r.parse(EnvInboundGatewaySuffixes, "", func(s string) (err error) {
		c.GatewaySuffixes, err = ParseSuffixes(s)
		return
	})
	r.parse(EnvDestinationProfileNetworks, DefaultPrivateNetworks, func(s string) (err error) {
		c.ProfileNetworks, err = ParseNetworks(s)
		return
	})

	r.hostPort(EnvPolicyAddr, &c.PolicyAddr)
	c.PolicyName = r.str(EnvPolicyName, "")
	c.PolicyWorkload = r.str(EnvPolicyWorkload, "")
	r.parse(EnvInboundDefaultPolicy, "all-unauthenticated", func(s string) error {
		switch s = strings.TrimSpace(s); s {
		case "all-unauthenticated", "all-authenticated", "cluster-unauthenticated",
			"cluster-authenticated", "deny", "audit":
			c.InboundDefaultPolicy = s
			return nil
		}
		return fmt.Errorf("unknown policy %q: want all-unauthenticated, all-authenticated, cluster-unauthenticated, cluster-authenticated, deny or audit", s)
	})
	r.parse(EnvPolicyClusterNetworks, DefaultPrivateNetworks, func(s string) (err error) {
		c.ClusterNetworks, err = ParseNetworks(s)
		return
	})

	r.parse(EnvIdentityDisabled, "false", func(s string) (err error) { c.IdentityDisabled, err = ParseBool(s); return })
	c.IdentityDir = r.str(EnvIdentityDir, "")
	c.IdentityTrustAnchors = r.str(EnvIdentityTrustAnchors, "")
	c.IdentityTokenFile = r.str(EnvIdentityTokenFile, "")
	r.hostPort(EnvIdentityAddr, &c.IdentityAddr)
	c.IdentityName = r.str(EnvIdentityName, "")
	c.IdentityLocalName = r.str(EnvIdentityLocalName, "")
	c.TapName = r.str(EnvTapName, "")

	r.parse(EnvShutdownEndpointEnabled, "false", func(s string) (err error) { c.ShutdownEndpoint, err = ParseBool(s); return })
	r.dur(EnvShutdownGracePeriod, "120s", &c.ShutdownGracePeriod)
	r.parse(EnvCores, "0", func(s string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n > 1024 {
			return fmt.Errorf("cores %q: want a whole number from 0 to 1024", s)
		}
		c.Cores = n
		return nil
	})
	r.parse(EnvCoresMaxRatio, "", func(s string) error {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || !(f > 0 && f <= 1) {
			return fmt.Errorf("ratio %q: want a number above 0 and at most 1, such as 0.2", s)
		}
		c.CoresMaxRatio = f
		return nil
	})
	r.parse(EnvMemoryLimit, strconv.Itoa(DefaultMemoryLimit), func(s string) (err error) {
		c.MemoryLimit, err = ParseBytes(s)
		return
	})

	r.parse(EnvAccessLog, "", func(s string) (err error) {
		if strings.TrimSpace(s) == "" {
			return nil // set but empty, as a template may leave it: no access log
		}
		c.AccessLog, err = accesslog.ParseFormat(s)
		return
	})

	r.parse(EnvIngressMode, "false", func(s string) (err error) { c.IngressMode, err = ParseBool(s); return })

	r.hostPort(EnvTraceCollectorAddr, &c.Trace.CollectorAddr)
	c.Trace.CollectorName = strings.TrimSpace(r.str(EnvTraceCollectorName, ""))
	r.parse(EnvTraceProtocol, proxyconf.TraceProtocolOpenTelemetry, func(s string) error {
		switch s = strings.TrimSpace(s); s {
		case proxyconf.TraceProtocolOpenTelemetry:
			return nil
		case "opencensus":
			return fmt.Errorf("OpenCensus is not supported: this proxy exports OTLP over gRPC; set %s", proxyconf.TraceProtocolOpenTelemetry)
		}
		return fmt.Errorf("unknown trace protocol %q: want %s", s, proxyconf.TraceProtocolOpenTelemetry)
	})
	c.Trace.ServiceName = r.str(EnvTraceServiceName, DefaultTraceServiceName)
	c.Trace.AttributesPath = r.str(EnvTraceAttributesPath, "")
	r.parse(EnvTraceExtraAttributes, "", func(s string) (err error) {
		c.Trace.ExtraAttributes, err = ParseAttributes(s)
		return
	})

	r.optAddr(EnvOutboundFallbackDst, &c.Outbound.FallbackDst)
	r.optAddr(EnvInboundFallbackDst, &c.Inbound.FallbackDst)

	if r.err != nil {
		return nil, r.err
	}
	return c, nil
}

// Workers is the GOMAXPROCS the proxy should run with when numCPU CPUs are available (Go's
// default GOMAXPROCS, which follows the container's CPU limit): Cores when set (a CPU limit
// wins, as in Linkerd), else CoresMaxRatio of numCPU rounded to the nearest whole number,
// else one, Linkerd's single-threaded default; never more than numCPU nor less than one.
func (c *Config) Workers(numCPU int) int {
	n := 1
	switch {
	case c.Cores > 0:
		n = c.Cores
	case c.CoresMaxRatio > 0:
		n = int(math.Round(c.CoresMaxRatio * float64(numCPU)))
	}
	return max(1, min(n, numCPU))
}

// Names lists every environment variable Load reads, in the order it reads them.
func Names() []string {
	var names []string
	_, _ = Load(func(name string) (string, bool) {
		names = append(names, name)
		return "", false
	})
	return names
}

// Unsupported names the LINKERD2_PROXY_* variables Linkerd's injector writes (and so does
// l5d's, from the same annotations) that this proxy deliberately does not act on, with why.
// The proxy logs a warning at start for each one that is set.
var Unsupported = map[string]string{
	proxyconf.EnvMetricsHostnameLabels: "outbound metrics carry no hostname label " +
		"(config.linkerd.io/proxy-metrics-hostname-labels); their label sets are fixed",
}

// Environ returns the proxy's configuration variables that lookup finds set: those Load reads
// and the Unsupported ones, and nothing else, so a variable added to the container for
// another purpose (a credential, say) is never reported. GET /env.json serves it.
func Environ(lookup func(string) (string, bool)) map[string]string {
	env := map[string]string{}
	for _, name := range Names() {
		if v, ok := lookup(name); ok {
			env[name] = v
		}
	}
	for name := range Unsupported {
		if v, ok := lookup(name); ok {
			env[name] = v
		}
	}
	return env
}

// SetUnsupported returns the Unsupported variables that lookup finds set, sorted.
func SetUnsupported(lookup func(string) (string, bool)) []string {
	var set []string
	for name := range Unsupported {
		if _, ok := lookup(name); ok {
			set = append(set, name)
		}
	}
	sort.Strings(set)
	return set
}

// ParseBytes parses a byte count: a whole number with an optional KiB, MiB or GiB suffix.
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, suffix)), m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("byte count %q: want a whole number with optional KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

// reader applies parsers to variables and keeps the first error, wrapped with the
// variable's name.
type reader struct {
	lookup func(string) (string, bool)
	err    error
}

func (r *reader) str(name, def string) string {
	if v, ok := r.lookup(name); ok {
		return v
	}
	return def
}

// parse calls fn with the variable's value (def when unset). An unset variable whose
// default is empty is not parsed.
func (r *reader) parse(name, def string, fn func(string) error) {
	v, ok := r.lookup(name)
	if !ok {
		if def == "" {
			return
		}
		v = def
	}
	if err := fn(v); err != nil && r.err == nil {
		r.err = fmt.Errorf("invalid %s=%q: %w", name, v, err)
	}
}

func (r *reader) addr(name, def string, dst *netip.AddrPort) {
	r.parse(name, def, func(s string) (err error) { *dst, err = ParseAddrPort(s); return })
}

// optAddr parses an optional ip:port; unset or empty leaves dst invalid.
func (r *reader) optAddr(name string, dst *netip.AddrPort) {
	r.parse(name, "", func(s string) (err error) {
		if strings.TrimSpace(s) == "" {
			return nil
		}
		*dst, err = ParseAddrPort(s)
		return
	})
}

func (r *reader) dur(name, def string, dst *time.Duration) {
	r.parse(name, def, func(s string) (err error) { *dst, err = ParseDuration(s); return })
}

func (r *reader) ports(name, def string, dst *PortSet) {
	r.parse(name, def, func(s string) (err error) { *dst, err = ParsePorts(s); return })
	if *dst == nil {
		*dst = PortSet{}
	}
}

func (r *reader) count(name, def string, dst *int) {
	r.parse(name, def, func(s string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n > 1<<20 {
			return fmt.Errorf("%q: want a whole number from 0 to %d", s, 1<<20)
		}
		*dst = n
		return nil
	})
}

func (r *reader) hostPort(name string, dst *string) {
	r.parse(name, "", func(s string) (err error) {
		if strings.TrimSpace(s) == "" {
			return nil
		}
		*dst, err = ParseHostPort(s)
		return
	})
}
