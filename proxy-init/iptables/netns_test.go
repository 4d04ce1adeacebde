package iptables_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/proxy-init/internal/redirecttest"
	"github.com/l5d-go/l5d/proxy-init/iptables"
	"github.com/l5d-go/l5d/test/netns"
)

// landingProcess dials dst from a process (bash) run in pod p as uid and returns where it
// landed.
func landingProcess(t *testing.T, p *netns.Pod, uid uint32, dst netip.AddrPort) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := netns.AsUser(exec.Command("bash", "-c", `exec 3<>"/dev/tcp/$0/$1" && cat <&3`,
		dst.Addr().String(), fmt.Sprint(dst.Port())), uid, uid)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := p.Run(cmd); err != nil {
		t.Fatalf("dial %s from a process in %s as uid %d: %v: %s", dst, p.PodName, uid, err, errb.String())
	}
	return out.String()
}

// The installers of these tests wait for the xtables lock (Wait): iptables-legacy takes a
// lock shared by every namespace, and other test processes may hold it for a moment.

func TestRedirectionInNamespaces(t *testing.T) {
	for _, mode := range []string{iptables.ModeLegacy, iptables.ModeNFT} {
		t.Run(mode, func(t *testing.T) {
			n := netns.New(t)
			a, b, c, d := n.Pod(t, "a"), n.Pod(t, "b"), n.Pod(t, "c"), n.Pod(t, "d")
			backends, err := iptables.ModeBackends(mode, true)
			if err != nil {
				t.Fatal(err)
			}
			cfg := iptables.DefaultConfig()
			cfg.InboundPortsToIgnore, _ = proxyconf.ParsePorts("4190,4191,9000")
			cfg.OutboundPortsToIgnore, _ = proxyconf.ParsePorts("9000")
			cfg.SubnetsToIgnore = []netip.Prefix{netip.PrefixFrom(c.IPv4, 32), netip.PrefixFrom(c.IPv6, 128)}
			saveAll := func(p *netns.Pod) string {
				return redirecttest.Save(t, p, "iptables-"+mode+"-save") + redirecttest.Save(t, p, "ip6tables-"+mode+"-save")
			}
			for _, p := range []*netns.Pod{a, b} {
				in := &iptables.Installer{Wait: true, Config: cfg, Backends: backends, NetNS: p.Path()}
				var sim bytes.Buffer
				if err := in.Simulate(t.Context(), &sim); err != nil {
					t.Fatal(err)
				}
				if saved := saveAll(p); strings.Contains(saved, "PROXY_INIT") {
					t.Fatalf("Simulate changed the rules:\n%s", saved)
				}
				if err := in.Apply(t.Context()); err != nil {
					t.Fatalf("apply in %s: %v", p.PodName, err)
				}
				if p != a {
					continue
				}
				// Simulate printed exactly what Apply applied: fed by hand to the
				// binaries its comments name, in a pod without rules, it gives the same
				// tables.
				replay(t, d, sim.String())
				if got, want := saveAll(d), saveAll(a); got != want {
					t.Fatalf("the simulated input gives other rules than Apply:\nsimulated:\n%s\napplied:\n%s", got, want)
				}
				// Re-running gives the same rules, not duplicates.
				before := saveAll(a)
				if err := in.Apply(t.Context()); err != nil {
					t.Fatal(err)
				}
				if after := saveAll(a); after != before {
					t.Fatalf("second run changed the rules:\nbefore:\n%s\nafter:\n%s", before, after)
				}
				if n := strings.Count(before, "-j PROXY_INIT_OUTPUT"); n != 2 {
					t.Fatalf("OUTPUT jumps to PROXY_INIT_OUTPUT %d times in the two families, want 2:\n%s", n, before)
				}
			}
			for _, p := range []*netns.Pod{a, b} {
				redirecttest.Listen(t, p, ":4140", "outbound")
				redirecttest.Listen(t, p, ":4143", "inbound")
				redirecttest.Listen(t, p, ":8080", "app")
				redirecttest.Listen(t, p, ":9000", "ignored")
			}
			redirecttest.Listen(t, c, ":8080", "c-app")
			for _, fam := range []struct {
				name string
				addr func(*netns.Pod) netip.Addr
				lo   netip.Addr
			}{
				{"ipv4", func(p *netns.Pod) netip.Addr { return p.IPv4 }, netip.MustParseAddr("127.0.0.1")},
				{"ipv6", func(p *netns.Pod) netip.Addr { return p.IPv6 }, netip.IPv6Loopback()},
			} {
				bApp := netip.AddrPortFrom(fam.addr(b), 8080)
				for _, tc := range []struct {
					what    string
					uid     int
					process bool // dial from a process run as uid, not a thread
					dst     netip.AddrPort
					want    string
				}{
					{"app dialling b:8080 lands on a's outbound proxy", -1, false, bApp, "outbound " + bApp.String()},
					{"the proxy's uid is exempt and lands on b's inbound proxy", 2102, false, bApp, "inbound " + bApp.String()},
					{"a process running as the proxy's uid is exempt", 2102, true, bApp, "inbound " + bApp.String()},
					{"a process running as another uid is redirected", 1000, true, bApp, "outbound " + bApp.String()},
					{"ignored ports bypass both sides", -1, false, netip.AddrPortFrom(fam.addr(b), 9000), "ignored"},
					{"ignored subnets bypass", -1, false, netip.AddrPortFrom(fam.addr(c), 8080), "c-app"},
					{"loopback bypasses", -1, false, netip.AddrPortFrom(fam.lo, 8080), "app"},
				} {
					var got string
					if tc.process {
						got = landingProcess(t, a, uint32(tc.uid), tc.dst)
					} else {
						got = redirecttest.Landing(t, a, tc.uid, tc.dst)
					}
					if !strings.HasPrefix(got, tc.want) {
						t.Errorf("%s %s: landed on %q, want %q", fam.name, tc.what, got, tc.want)
					}
				}
			}
		})
	}
}

// replay feeds each "# <family>: <binary> <args>" section of a simulation to that binary,
// inside pod p.
func replay(t *testing.T, p *netns.Pod, sim string) {
	t.Helper()
	var head []string
	var body strings.Builder
	flush := func() {
		if head == nil {
			return
		}
		cmd := exec.Command(head[0], head[1:]...)
		var out bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(body.String()), &out, &out
		if err := p.Run(cmd); err != nil {
			t.Fatalf("replaying %s: %v: %s\n%s", head, err, out.String(), body.String())
		}
		head = nil
		body.Reset()
	}
	for _, line := range strings.SplitAfter(sim, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && (f[1] == "IPv4:" || f[1] == "IPv6:") {
			flush()
			head = f[2:]
			continue
		}
		body.WriteString(line)
	}
	flush()
	if head == nil && !strings.Contains(sim, "*nat") {
		t.Fatalf("simulation has no rules:\n%s", sim)
	}
}

func TestMissingBinaryChangesNothing(t *testing.T) {
	n := netns.New(t)
	a := n.Pod(t, "a")
	legacy, err := iptables.ModeBackends(iptables.ModeLegacy, false)
	if err != nil {
		t.Fatal(err)
	}
	// The IPv4 binaries exist, the IPv6 ones do not: not even IPv4 may be changed.
	in := &iptables.Installer{Wait: true, Config: iptables.DefaultConfig(), NetNS: a.Path(),
		Backends: append(legacy, iptables.Backend{Family: iptables.IPv6, Save: "ip6tables-nosuch-save", Restore: "ip6tables-nosuch-restore"})}
	err = in.Apply(t.Context())
	if err == nil || !strings.Contains(err.Error(), "ip6tables-nosuch") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("err = %v, want one naming the missing binary", err)
	}
	if saved := redirecttest.Save(t, a, "iptables-legacy-save") + redirecttest.Save(t, a, "iptables-nft-save"); strings.Contains(saved, "PROXY_INIT") {
		t.Fatalf("rules were installed despite the error:\n%s", saved)
	}
}

// TestFailingBackendIsRolledBack makes the IPv6 backend fail after IPv4 was changed, as a
// kernel without the ip6 nat table does: IPv4 must end as it was before.
func TestFailingBackendIsRolledBack(t *testing.T) {
	n := netns.New(t)
	a := n.Pod(t, "a")
	dir := t.TempDir()
	broken := filepath.Join(dir, "ip6tables-broken-restore")
	script := `#!/bin/sh
for arg in "$@"; do
	if [ "$arg" = --test ]; then exec ip6tables-legacy-restore "$@"; fi
done
echo "ip6tables-restore v1.8.11 (legacy): can not initialize ip6tables table nat: Table does not exist (do you need to insmod?)" >&2
exit 1
`
	if err := os.WriteFile(broken, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	legacy, err := iptables.ModeBackends(iptables.ModeLegacy, false)
	if err != nil {
		t.Fatal(err)
	}
	// Rules from an earlier, good run.
	earlier := &iptables.Installer{Wait: true, Config: iptables.DefaultConfig(), Backends: legacy, NetNS: a.Path()}
	if err := earlier.Apply(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := redirecttest.Save(t, a, "iptables-legacy-save")
	cfg := iptables.DefaultConfig()
	cfg.OutboundPortsToIgnore, _ = proxyconf.ParsePorts("25,587")
	in := &iptables.Installer{Wait: true, Config: cfg, NetNS: a.Path(), Backends: append(legacy,
		iptables.Backend{Family: iptables.IPv6, Save: "ip6tables-legacy-save", Restore: broken})}
	err = in.Apply(t.Context())
	var ce *iptables.CommandError
	if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), "Table does not exist") ||
		!strings.Contains(err.Error(), "kernel lacks this iptables backend") {
		t.Fatalf("err = %v, want a CommandError naming the missing backend", err)
	}
	if after := redirecttest.Save(t, a, "iptables-legacy-save"); after != before {
		t.Fatalf("IPv4 rules not put back after IPv6 failed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if saved := redirecttest.Save(t, a, "ip6tables-legacy-save"); strings.Contains(saved, "PROXY_INIT") {
		t.Fatalf("IPv6 rules half installed:\n%s", saved)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if left, err := netns.Leftovers(); err != nil || len(left) > 0 {
		fmt.Fprintf(os.Stderr, "network namespaces left behind: %v %v\n", left, err)
		code = 1
	}
	os.Exit(code)
}
