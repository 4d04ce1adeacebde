package config

import (
	"encoding/json"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// linkerdEnv reads a variant of testdata/linkerd-injected-env.json: the environment
// Linkerd's injector gives a proxy, transcribed from its chart template.
func linkerdEnv(t *testing.T, variant string) map[string]string {
	t.Helper()
	b, err := os.ReadFile("testdata/linkerd-injected-env.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var list []struct{ Name, Value string }
	if err := json.Unmarshal(doc[variant], &list); err != nil || len(list) == 0 {
		t.Fatalf("fixture variant %q: %v", variant, err)
	}
	m := map[string]string{}
	for _, e := range list {
		m[e.Name] = e.Value
	}
	return m
}

// TestLinkerdInjectedEnvironment: a pod injected by Linkerd's injector runs this proxy:
// every variable Linkerd writes is accepted (Load succeeds with Linkerd's values, the
// default ones and those of every optional setting), each LINKERD2_PROXY_* one is either
// read or listed in Unsupported with its reason, and the settings land where Linkerd's
// proxy puts them.
func TestLinkerdInjectedEnvironment(t *testing.T) {
	read := map[string]bool{}
	for _, n := range Names() {
		read[n] = true
	}
	for _, variant := range []string{"default", "options"} {
		t.Run(variant, func(t *testing.T) {
			env := linkerdEnv(t, variant)
			c, err := Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatalf("Linkerd's injected environment is refused: %v", err)
			}
			for name := range env {
				if !strings.HasPrefix(name, "LINKERD2_PROXY_") {
					continue
				}
				why, unsupported := Unsupported[name]
				switch {
				case !read[name] && !unsupported:
					t.Errorf("%s: neither read nor listed as unsupported", name)
				case unsupported && strings.TrimSpace(why) == "":
					t.Errorf("%s: listed as unsupported without a reason", name)
				}
			}
			if got := SetUnsupported(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); !slices.IsSorted(got) {
				t.Errorf("unsupported variables not sorted: %v", got)
			}
			checks := []struct {
				name      string
				got, want any
			}{
				{"outbound listener", c.Outbound.ListenAddr, netip.MustParseAddrPort("127.0.0.1:4140")},
				{"inbound connect timeout", c.Inbound.ConnectTimeout, 100 * time.Millisecond},
				{"outbound discovery idle", c.Outbound.DiscoveryIdleTimeout, 5 * time.Second},
				{"inbound discovery idle", c.Inbound.DiscoveryIdleTimeout, 90 * time.Second},
				{"inbound ports", c.InboundPorts.Has(8801), true},
				{"opaque 3306", c.Inbound.OpaquePorts.Has(3306), true},
				{"policy workload", strings.TrimSpace(c.PolicyWorkload), `{"ns":"emojivoto", "pod":"web-7d9f8b6c5-x2k4p"}`},
				{"identity local name", c.IdentityLocalName, "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"},
				{"destination", c.DestinationAddr, "linkerd-dst-headless.linkerd.svc.cluster.local.:8086"},
				{"log level (span filters ignored)", c.LogLevel.String(), "INFO"},
			}
			if variant == "options" {
				checks = append(checks, []struct {
					name      string
					got, want any
				}{
					{"second outbound listener", c.Outbound.MoreListenAddrs, []netip.AddrPort{netip.MustParseAddrPort("[::1]:4140")}},
					{"admin on every family", c.AdminListenAddr, netip.MustParseAddrPort("[::]:4191")},
					{"pod IPs", len(c.InboundIPs), 2},
					{"cores", c.Cores, 2},
					{"shutdown endpoint", c.ShutdownEndpoint, true},
					{"shutdown grace", c.ShutdownGracePeriod, 30 * time.Second},
					{"detection timeout disabled", c.Inbound.DetectTimeout, 365 * 24 * time.Hour},
				}...)
			}
			for _, ck := range checks {
				if !equal(ck.got, ck.want) {
					t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
				}
			}
		})
	}
}

func equal(a, b any) bool {
	if x, ok := a.([]netip.AddrPort); ok {
		y, _ := b.([]netip.AddrPort)
		return slices.Equal(x, y)
	}
	return a == b
}
