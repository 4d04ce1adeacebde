package config

import (
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/proxyconf"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadDefaultsMatchLinkerd(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"admin", c.AdminListenAddr, netip.MustParseAddrPort("0.0.0.0:4191")},
		{"control", c.ControlListenAddr, netip.MustParseAddrPort("0.0.0.0:4190")},
		{"inbound", c.Inbound.ListenAddr, netip.MustParseAddrPort("0.0.0.0:4143")},
		{"outbound", c.Outbound.ListenAddr, netip.MustParseAddrPort("127.0.0.1:4140")},
		{"inbound connect", c.Inbound.ConnectTimeout, 100 * time.Millisecond},
		{"outbound connect", c.Outbound.ConnectTimeout, time.Second},
		{"detect", c.Outbound.DetectTimeout, 10 * time.Second},
		{"queue", c.Outbound.QueueCapacity, 100},
		{"failfast", c.Outbound.QueueFailfast, 3 * time.Second},
		{"discovery idle", c.Outbound.DiscoveryIdleTimeout, 5 * time.Second},
		{"log level", c.LogLevel, slog.LevelInfo},
		{"log format", c.LogFormat, LogPlain},
		{"suffixes", strings.Join(c.ProfileSuffixes, ","), "svc.cluster.local."},
		{"networks", len(c.ProfileNetworks), 4},
		{"opaque 3306", c.Inbound.OpaquePorts.Has(3306), true},
		{"opaque 80", c.Inbound.OpaquePorts.Has(80), false},
		{"shutdown", c.ShutdownEndpoint, false},
		{"fallback", c.Outbound.FallbackDst.IsValid(), false},
		{"memory limit", c.MemoryLimit, int64(DefaultMemoryLimit)},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// TestLoadInjectedPod uses the environment the injector writes (seed 003).
func TestLoadInjectedPod(t *testing.T) {
	c, err := Load(env(map[string]string{
		EnvLog:                        "warn,linkerd=info",
		EnvLogFormat:                  "plain",
		EnvDestinationAddr:            "linkerd-dst-headless.linkerd.svc.cluster.local.:8086",
		EnvDestinationName:            "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
		EnvDestinationProfileNetworks: "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16",
		EnvDestinationProfileSuffixes: "svc.cluster.local.",
		EnvDestinationContext:         `{"ns":"emojivoto", "nodeName":"node-1"}`,
		EnvPolicyAddr:                 "linkerd-policy.linkerd.svc.cluster.local.:8090",
		EnvPolicyWorkload:             "emojivoto:web-1",
		EnvInboundDefaultPolicy:       "all-unauthenticated",
		EnvInboundConnectTimeout:      "100ms",
		EnvOutboundConnectTimeout:     "1000ms",
		EnvInboundIPs:                 "10.244.0.7,fd00:244::7",
		EnvInboundPorts:               "80",
		EnvInboundAcceptKeepalive:     "10000ms",
		EnvOutboundConnectKeepalv:     "10000ms",
		EnvInboundDisableDetection:    "25,587,3306,4444,5432,6379,9300,11211",
		EnvIdentityAddr:               "linkerd-identity-headless.linkerd.svc.cluster.local.:8080",
		EnvShutdownEndpointEnabled:    "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DestinationAddr != "linkerd-dst-headless.linkerd.svc.cluster.local.:8086" {
		t.Errorf("destination addr %q", c.DestinationAddr)
	}
	if c.Inbound.AcceptKeepalive != 10*time.Second {
		t.Errorf("accept keepalive %v", c.Inbound.AcceptKeepalive)
	}
	if len(c.InboundIPs) != 2 || !c.InboundPorts.Has(80) {
		t.Errorf("inbound ips %v ports %v", c.InboundIPs, c.InboundPorts)
	}
	if !c.ShutdownEndpoint {
		t.Error("shutdown endpoint not enabled")
	}
}

func TestLoadRejectsInvalidNamingTheVariable(t *testing.T) {
	cases := []struct{ name, value string }{
		{EnvInboundListenAddr, "4143"},
		{EnvOutboundListenAddr, "localhost:4140"},
		{EnvOutboundConnectTimeout, "fast"},
		{EnvInboundConnectTimeout, "100"},
		{EnvInboundDisableDetection, "25,abc"},
		{EnvInboundDisableDetection, "70000"},
		{EnvInboundPortsRequireID, "8080,http"},
		{EnvInboundPortsRequireID, "9000-8000"},
		{EnvInboundPortsRequireTLS, "0"},
		{EnvAccessLog, "/var/log/access.log"},
		{EnvIngressMode, "ingress"},
		{EnvDestinationProfileNetworks, "10.0.0.0/33"},
		{EnvDestinationProfileSuffixes, "bad..name"},
		{EnvDestinationAddr, "no-port"},
		{EnvLog, "linkerd=loud"},
		{EnvLogFormat, "xml"},
		{EnvInboundDefaultPolicy, "allow-everything"},
		{EnvShutdownEndpointEnabled, "maybe"},
		{EnvOutboundHTTPQueueCapacity, "-1"},
		{EnvCores, "two"},
		{EnvOutboundFallbackDst, "nowhere"},
		{EnvMemoryLimit, "lots"},
		{EnvTraceCollectorAddr, "collector.linkerd-jaeger"},
		{EnvTraceProtocol, "zipkin"},
		{EnvTraceProtocol, "opencensus"},
		{EnvTraceExtraAttributes, "k8s.pod.uid=1\nno-equals-sign"},
		{EnvTraceExtraAttributes, "=value"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{tc.name: tc.value}))
			if err == nil {
				t.Fatalf("accepted %s=%q", tc.name, tc.value)
			}
			if !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %q does not name %s", err, tc.name)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"100ms", 100 * time.Millisecond, true},
		{"10s", 10 * time.Second, true},
		{" 2m ", 2 * time.Minute, true},
		{"1h", time.Hour, true},
		{"1d", 24 * time.Hour, true},
		{"0", 0, true},
		{"10", 0, false},
		{"", 0, false},
		{"-1s", 0, false},
		{"1.5s", 0, false},
		{"10us", 0, false},
		{"99999999999s", 0, false},
	}
	for _, tc := range cases {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParsePorts(t *testing.T) {
	s, err := ParsePorts("25, 587,8000-8002,")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint16{25, 587, 8000, 8001, 8002} {
		if !s.Has(p) {
			t.Errorf("missing %d", p)
		}
	}
	if len(s) != 5 {
		t.Errorf("got %d ports, want 5", len(s))
	}
	for _, bad := range []string{"0", "8002-8000", "x", "1-", "65536"} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("ParsePorts(%q) accepted", bad)
		}
	}
}

func TestParseLogLevel(t *testing.T) {
	cases := []struct {
		in   string
		want slog.Level
		ok   bool
	}{
		{"warn,linkerd=info", slog.LevelInfo, true},
		{"linkerd=debug", slog.LevelDebug, true},
		{"warn,linkerd2_proxy=info", slog.LevelInfo, true},
		{"error", slog.LevelError, true},
		{"info,hyper=debug", slog.LevelInfo, true},
		{"off", LevelOff, true},
		{"trace", LevelTrace, true},
		{"linkerd[outbound]=debug", slog.LevelDebug, true},
		{"", slog.LevelWarn, true},
		{"linkerd=verbose", 0, false},
		{"=info", 0, false},
	}
	for _, tc := range cases {
		got, err := ParseLogLevel(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseLogLevel(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseHostPort(t *testing.T) {
	for _, ok := range []string{"linkerd-dst-headless.linkerd.svc.cluster.local.:8086", "10.0.0.1:8086", "[::1]:8086", "localhost:1"} {
		if _, err := ParseHostPort(ok); err != nil {
			t.Errorf("ParseHostPort(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ":8086", "host", "host:0", "ho st:80", "[::1:80", "-a.b:80"} {
		if _, err := ParseHostPort(bad); err == nil {
			t.Errorf("ParseHostPort(%q) accepted", bad)
		}
	}
}

func TestListenAddrsLists(t *testing.T) {
	env := map[string]string{EnvOutboundListenAddrs: "127.0.0.1:4140, [::1]:4140", EnvInboundListenAddrs: "[::]:4143"}
	cfg, err := Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Outbound.ListenAddr.String() != "127.0.0.1:4140" || len(cfg.Outbound.MoreListenAddrs) != 1 || cfg.Outbound.MoreListenAddrs[0].String() != "[::1]:4140" {
		t.Fatalf("outbound %v %v", cfg.Outbound.ListenAddr, cfg.Outbound.MoreListenAddrs)
	}
	if cfg.Inbound.ListenAddr.String() != "[::]:4143" {
		t.Fatalf("inbound %v", cfg.Inbound.ListenAddr)
	}
	env[EnvInboundListenAddrs] = "[::]:4143,nonsense"
	if _, err := Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil || !strings.Contains(err.Error(), EnvInboundListenAddrs) {
		t.Fatalf("bad list: %v", err)
	}
}

// TestWorkers checks GOMAXPROCS from LINKERD2_PROXY_CORES (a CPU limit, which wins) and
// LINKERD2_PROXY_CORES_MAX_RATIO (Linkerd's proxy-cpu-ratio-limit), and that a ratio outside
// (0, 1] is refused naming the variable.
func TestWorkers(t *testing.T) {
	for _, tc := range []struct {
		env    map[string]string
		numCPU int
		want   int
	}{
		{nil, 8, 1}, // unset: Linkerd's single-threaded default
		{nil, 0, 1}, // never zero
		{map[string]string{EnvCores: "2"}, 8, 2},
		{map[string]string{EnvCores: "4"}, 2, 2}, // capped at what is available
		{map[string]string{EnvCoresMaxRatio: "0.3"}, 10, 3},
		{map[string]string{EnvCoresMaxRatio: "0.2"}, 2, 1},
		{map[string]string{EnvCoresMaxRatio: "1"}, 4, 4},
		{map[string]string{EnvCores: "1", EnvCoresMaxRatio: "1"}, 16, 1},
	} {
		c, err := Load(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if got := c.Workers(tc.numCPU); got != tc.want {
			t.Errorf("%v on %d CPUs: %d workers, want %d", tc.env, tc.numCPU, got, tc.want)
		}
	}
	for _, bad := range []string{"0", "1.5", "-0.1", "half"} {
		_, err := Load(func(k string) (string, bool) {
			if k == EnvCoresMaxRatio {
				return bad, true
			}
			return "", false
		})
		if err == nil || !strings.Contains(err.Error(), EnvCoresMaxRatio) {
			t.Errorf("ratio %q: error %v, want one naming %s", bad, err, EnvCoresMaxRatio)
		}
	}
}

// TestNamesAndUnsupported checks Names lists what Load reads (the injector's parity test
// relies on it) and SetUnsupported reports only the ignored variables that are set.
func TestNamesAndUnsupported(t *testing.T) {
	names := map[string]bool{}
	for _, n := range Names() {
		names[n] = true
	}
	for _, want := range []string{EnvLog, EnvCores, EnvCoresMaxRatio, EnvShutdownGracePeriod, EnvInboundDiscoveryIdle, EnvMemoryLimit, EnvAccessLog, EnvIngressMode, EnvInboundPortsRequireID, EnvInboundPortsRequireTLS, EnvInboundGatewaySuffixes} {
		if !names[want] {
			t.Errorf("Names() lacks %s", want)
		}
	}
	env := map[string]string{proxyconf.EnvMetricsHostnameLabels: "true", EnvAccessLog: "json", EnvLog: "info", EnvInboundGatewaySuffixes: "svc.cluster.local."}
	got := SetUnsupported(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if len(got) != 1 || got[0] != proxyconf.EnvMetricsHostnameLabels {
		t.Errorf("SetUnsupported = %v, want [%s]", got, proxyconf.EnvMetricsHostnameLabels)
	}
}

func TestLoadTrace(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Trace.CollectorAddr != "" || c.Trace.ServiceName != "linkerd-proxy" {
		t.Errorf("defaults: %+v", c.Trace)
	}
	c, err = Load(env(map[string]string{
		EnvTraceCollectorAddr:   "collector.linkerd-jaeger:4317",
		EnvTraceCollectorName:   "collector.linkerd-jaeger.serviceaccount.identity.linkerd.cluster.local",
		EnvTraceProtocol:        "opentelemetry",
		EnvTraceServiceName:     "web-proxy",
		EnvTraceAttributesPath:  "/var/run/linkerd/podinfo/labels",
		EnvTraceExtraAttributes: "k8s.pod.uid=\"abc\"\n\nk8s.container.name=linkerd-proxy\nempty=\nkey==v",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"k8s.pod.uid": "abc", "k8s.container.name": "linkerd-proxy", "empty": "", "key": "=v"}
	if len(c.Trace.ExtraAttributes) != len(want) {
		t.Errorf("extra attributes %v, want %v", c.Trace.ExtraAttributes, want)
	}
	for k, v := range want {
		if c.Trace.ExtraAttributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, c.Trace.ExtraAttributes[k], v)
		}
	}
	if c.Trace.CollectorAddr != "collector.linkerd-jaeger:4317" || c.Trace.ServiceName != "web-proxy" ||
		c.Trace.AttributesPath != "/var/run/linkerd/podinfo/labels" || c.Trace.CollectorName == "" {
		t.Errorf("trace config %+v", c.Trace)
	}
}

// TestGatewaySuffixes: LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES (what the injector writes
// for config.linkerd.io/enable-gateway) is read as DNS suffixes; unset is not a gateway,
// and a malformed list stops the proxy naming the variable.
func TestGatewaySuffixes(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil || c.GatewaySuffixes != nil {
		t.Fatalf("unset: %v %v", c.GatewaySuffixes, err)
	}
	c, err = Load(env(map[string]string{EnvInboundGatewaySuffixes: "svc.Cluster.local., svc.east.example"}))
	if err != nil || !slices.Equal(c.GatewaySuffixes, []string{"svc.cluster.local.", "svc.east.example."}) {
		t.Fatalf("got %q %v", c.GatewaySuffixes, err)
	}
	if _, err := Load(env(map[string]string{EnvInboundGatewaySuffixes: "svc..local"})); err == nil || !strings.Contains(err.Error(), EnvInboundGatewaySuffixes) {
		t.Fatalf("a malformed suffix: %v", err)
	}
}
