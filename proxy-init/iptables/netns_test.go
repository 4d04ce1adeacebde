package iptables_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy-init/iptables"
	"github.com/l5d-go/l5d/proxy-init/ports"
	"github.com/l5d-go/l5d/proxy/origdst"
	"github.com/l5d-go/l5d/test/netns"
)

// serveTagged accepts on ln and answers each connection with "tag original-destination".
func serveTagged(t *testing.T, ln net.Listener, tag string) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dst, err := origdst.Lookup(c.(*net.TCPConn))
			if err != nil {
				fmt.Fprintf(c, "%s error:%v", tag, err)
			} else {
				fmt.Fprintf(c, "%s %s", tag, dst)
			}
			c.Close()
		}
	}()
}

func listen(t *testing.T, p *netns.Pod, addr, tag string) {
	t.Helper()
	ln, err := p.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, p.PodName, err)
	}
	serveTagged(t, ln, tag)
}

// landing dials dst from pod p (as uid when uid >= 0) and returns where it landed.
func landing(t *testing.T, p *netns.Pod, uid int, dst netip.AddrPort) string {
	t.Helper()
	var got string
	dial := func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(context.Background(), "tcp", dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	}
	var err error
	if uid >= 0 {
		err = p.DoAs(uint32(uid), uint32(uid), dial)
	} else {
		err = p.Do(dial)
	}
	if err != nil {
		t.Fatalf("dial %s from %s: %v", dst, p.PodName, err)
	}
	return got
}

func save(t *testing.T, p *netns.Pod, bin string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, "-t", "nat")
	cmd.Stdout = &out
	if err := p.Run(cmd); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	// Counters and the header's timestamp change between runs.
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.Index(l, " ["); strings.HasPrefix(l, ":") && i > 0 {
			l = l[:i]
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

func TestRedirectionInNamespaces(t *testing.T) {
	for _, mode := range []string{iptables.ModeLegacy, iptables.ModeNFT} {
		t.Run(mode, func(t *testing.T) {
			n := netns.New(t)
			a, b, c := n.Pod(t, "a"), n.Pod(t, "b"), n.Pod(t, "c")
			backends, err := iptables.ModeBackends(mode, true)
			if err != nil {
				t.Fatal(err)
			}
			cfg := iptables.DefaultConfig()
			cfg.InboundPortsToIgnore, _ = ports.Parse("4190,4191,9000")
			cfg.OutboundPortsToIgnore, _ = ports.Parse("9000")
			cfg.SubnetsToIgnore = []netip.Prefix{netip.PrefixFrom(c.IPv4, 32), netip.PrefixFrom(c.IPv6, 128)}
			for _, p := range []*netns.Pod{a, b} {
				in := &iptables.Installer{Config: cfg, Backends: backends, NetNS: p.Path()}
				var sim bytes.Buffer
				if err := in.Simulate(t.Context(), &sim); err != nil {
					t.Fatal(err)
				}
				if err := in.Apply(t.Context()); err != nil {
					t.Fatalf("apply in %s: %v", p.PodName, err)
				}
				if p == a {
					// Simulate printed exactly the rules now installed.
					saved := save(t, p, "iptables-"+mode+"-save") + save(t, p, "ip6tables-"+mode+"-save")
					for _, line := range strings.Split(sim.String(), "\n") {
						if strings.HasPrefix(line, "-A PROXY_INIT") && !strings.Contains(saved, line) {
							t.Errorf("simulated rule %q is not what was installed:\n%s", line, saved)
						}
					}
					// Re-running gives the same rules, not duplicates.
					before := save(t, p, "iptables-"+mode+"-save") + save(t, p, "ip6tables-"+mode+"-save")
					if err := in.Apply(t.Context()); err != nil {
						t.Fatal(err)
					}
					if after := save(t, p, "iptables-"+mode+"-save") + save(t, p, "ip6tables-"+mode+"-save"); after != before {
						t.Fatalf("second run changed the rules:\nbefore:\n%s\nafter:\n%s", before, after)
					}
				}
			}
			for _, p := range []*netns.Pod{a, b} {
				listen(t, p, ":4140", "outbound")
				listen(t, p, ":4143", "inbound")
				listen(t, p, ":8080", "app")
				listen(t, p, ":9000", "ignored")
			}
			listen(t, c, ":8080", "c-app")
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
					what string
					uid  int
					dst  netip.AddrPort
					want string
				}{
					{"app dialling b:8080 lands on a's outbound proxy", -1, bApp, "outbound " + bApp.String()},
					{"the proxy's uid is exempt and lands on b's inbound proxy", 2102, bApp, "inbound " + bApp.String()},
					{"ignored ports bypass both sides", -1, netip.AddrPortFrom(fam.addr(b), 9000), "ignored"},
					{"ignored subnets bypass", -1, netip.AddrPortFrom(fam.addr(c), 8080), "c-app"},
					{"loopback bypasses", -1, netip.AddrPortFrom(fam.lo, 8080), "app"},
				} {
					got := landing(t, a, tc.uid, tc.dst)
					if !strings.HasPrefix(got, tc.want) {
						t.Errorf("%s %s: landed on %q, want %q", fam.name, tc.what, got, tc.want)
					}
				}
			}
		})
	}
}

func TestMissingBinaryChangesNothing(t *testing.T) {
	n := netns.New(t)
	a := n.Pod(t, "a")
	in := &iptables.Installer{Config: iptables.DefaultConfig(), NetNS: a.Path(),
		Backends: []iptables.Backend{{Family: iptables.IPv4, Save: "iptables-nosuch-save", Restore: "iptables-nosuch-restore"}}}
	err := in.Apply(t.Context())
	if err == nil || !strings.Contains(err.Error(), "iptables-nosuch") {
		t.Fatalf("err = %v, want one naming the missing binary", err)
	}
	if saved := save(t, a, "iptables-legacy-save") + save(t, a, "iptables-nft-save"); strings.Contains(saved, "PROXY_INIT") {
		t.Fatalf("rules were installed despite the error:\n%s", saved)
	}
	var ce *iptables.CommandError
	_ = errors.As(err, &ce)
}
