package netns

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func hostLinks(t *testing.T) string {
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v: %s", err, out)
	}
	return string(out)
}

func TestPodsReachEachOtherOverBothFamilies(t *testing.T) {
	before := hostLinks(t)
	n := New(t)
	t.Cleanup(func() {
		if after := hostLinks(t); after != before {
			t.Errorf("the host namespace's links changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	a, b := n.Pod(t, "a"), n.Pod(t, "b")
	if a.IPv4 == b.IPv4 || !PodNetworkV4.Contains(a.IPv4) || !PodNetworkV6.Contains(b.IPv6) {
		t.Fatalf("addresses: a=%s/%s b=%s/%s", a.IPv4, a.IPv6, b.IPv4, b.IPv6)
	}
	ln, err := b.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.RemoteAddr().String())
			c.Close()
		}
	}()
	for _, dst := range []netip.Addr{b.IPv4, b.IPv6} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		c, err := a.Dial(ctx, "tcp", netip.AddrPortFrom(dst, 8080).String())
		cancel()
		if err != nil {
			t.Fatalf("dial %s from a: %v", dst, err)
		}
		peer, _ := io.ReadAll(c)
		c.Close()
		src, err := netip.ParseAddrPort(string(peer))
		if err != nil || (src.Addr().Unmap() != a.IPv4 && src.Addr() != a.IPv6) {
			t.Fatalf("b saw the connection from %q, want a's address", peer)
		}
	}
}

func TestProcessRunsInPodAsUser(t *testing.T) {
	n := New(t)
	p := n.Pod(t, "p")
	var out bytes.Buffer
	cmd := AsUser(exec.Command("sh", "-c", "id -u; id -g; ip -o -4 addr show dev eth0; echo $GREETING"), 2102, 2103)
	cmd.Env = []string{"GREETING=hello", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout = &out
	if err := p.Run(cmd); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"2102\n2103\n", p.IPv4.String(), "hello"} {
		if !strings.Contains(got, want) {
			t.Fatalf("process output %q lacks %q", got, want)
		}
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	nw, err := NewNetwork()
	if err != nil {
		t.Skip(err)
	}
	if _, err := nw.AddPod("x"); err != nil {
		t.Fatal(err)
	}
	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(out), nw.id) {
		t.Fatalf("namespaces left behind:\n%s", out)
	}
}

func TestReclaimRemovesNamespacesOfDeadRunsOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	// A namespace named for a process that no longer exists (pid 1 with another start
	// time), as a killed earlier run leaves behind, and one of this live process.
	dead := Prefix + "1-1-99-node"
	own, err := ownerID()
	if err != nil {
		t.Fatal(err)
	}
	live := Prefix + own + "-999-node"
	for _, name := range []string{dead, live} {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", live).Run() })
	if err := Reclaim(); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(out), dead) {
		t.Fatalf("leaked namespace %s not reclaimed:\n%s", dead, out)
	}
	if !strings.Contains(string(out), live) {
		t.Fatalf("namespace of a live run %s was removed", live)
	}
}
