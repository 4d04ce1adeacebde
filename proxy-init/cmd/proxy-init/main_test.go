package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/test/netns"
)

func TestFlagErrorsNameTheProblem(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--inbound-ports-to-ignore", "80,abc"}, "abc"},
		{[]string{"--outbound-ports-to-ignore", "9000-8000"}, "9000-8000"},
		{[]string{"--subnets-to-ignore", "10.0.0.0/33"}, "10.0.0.0/33"},
		{[]string{"--incoming-proxy-port", "70000"}, "incoming-proxy-port"},
		{[]string{"--iptables-mode", "ebpf"}, "ebpf"},
		{[]string{"stray"}, "unexpected arguments"},
	} {
		var out, errb bytes.Buffer
		code := run(t.Context(), tc.args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 naming %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

func TestSimulateThenApplyInANamespace(t *testing.T) {
	n := netns.New(t)
	p := n.Pod(t, "p")
	args := []string{"--netns", p.Path(), "--iptables-mode", "nft", "--inbound-ports-to-ignore", "4190,4191",
		"--outbound-ports-to-ignore", "443,8000-8100", "--proxy-uid", "2102", "--log-level", "error"}
	var sim, errb bytes.Buffer
	if code := run(t.Context(), append(args, "--simulate"), &sim, &errb); code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(sim.String(), "--to-ports 4140") || !strings.Contains(sim.String(), "--dports 443,8000:8100") {
		t.Fatalf("simulation lacks the expected rules:\n%s", sim.String())
	}
	if saved := iptablesSave(t, p); strings.Contains(saved, "PROXY_INIT") {
		t.Fatal("--simulate changed the rules")
	}
	if code := run(t.Context(), args, &bytes.Buffer{}, &errb); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errb.String())
	}
	if saved := iptablesSave(t, p); !strings.Contains(saved, "-j REDIRECT --to-ports 4143") {
		t.Fatalf("rules not installed:\n%s", saved)
	}
}

func TestMissingFirewallBinaryFails(t *testing.T) {
	n := netns.New(t)
	p := n.Pod(t, "p")
	var errb bytes.Buffer
	code := run(t.Context(), []string{"--netns", p.Path(), "--firewall-bin-path", "/nonexistent/iptables", "--ipv6=false"}, &bytes.Buffer{}, &errb)
	if code == 0 || !strings.Contains(errb.String(), "/nonexistent/iptables") {
		t.Fatalf("exit %d, stderr %q: want a failure naming the binary", code, errb.String())
	}
}

func iptablesSave(t *testing.T, p *netns.Pod) string {
	var out bytes.Buffer
	cmd := exec.Command("iptables-nft-save", "-t", "nat")
	cmd.Stdout = &out
	if err := p.Run(cmd); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
