package origdst_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/origdst"
	"github.com/l5d-go/l5d/test/netns"
)

// accepted dials dst inside pod p and returns the connection the listener ln accepted.
func accepted(t *testing.T, p *netns.Pod, ln net.Listener, dst netip.AddrPort) *net.TCPConn {
	t.Helper()
	conns := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			conns <- c
		}
		close(conns)
	}()
	c, err := p.Dial(t.Context(), "tcp", dst.String())
	if err != nil {
		t.Fatalf("dial %s: %v", dst, err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case s, ok := <-conns:
		if !ok {
			t.Fatal("accept failed")
		}
		t.Cleanup(func() { s.Close() })
		return s.(*net.TCPConn)
	case <-time.After(10 * time.Second):
		t.Fatalf("the dial of %s was not accepted on %s", dst, ln.Addr())
		return nil
	}
}

func TestLookupReadsTheRedirectedDestination(t *testing.T) {
	n := netns.New(t)
	a, b := n.Pod(t, "a"), n.Pod(t, "b")
	for _, cmd := range [][]string{
		{"iptables-nft", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "4140"},
		{"ip6tables-nft", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "4140"},
	} {
		var out strings.Builder
		c := exec.Command(cmd[0], cmd[1:]...)
		c.Stdout, c.Stderr = &out, &out
		if err := a.Run(c); err != nil {
			t.Fatalf("%s: %v: %s", cmd, err, out.String())
		}
	}
	ln, err := a.Listen("tcp", ":4140") // one dual-stack socket, as the proxy listens
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	direct, err := a.Listen("tcp", ":4141")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	for _, dst := range []netip.AddrPort{
		netip.AddrPortFrom(b.IPv4, 8080),
		netip.AddrPortFrom(b.IPv6, 8080),
	} {
		c := accepted(t, a, ln, dst)
		got, err := origdst.Lookup(c)
		if err != nil || got != dst {
			t.Errorf("Lookup of a connection to %s redirected to %s = %v, %v; want %s", dst, c.LocalAddr(), got, err, dst)
		}
	}
	// A connection that was not redirected: its original destination is where it is.
	for _, dst := range []netip.AddrPort{
		netip.AddrPortFrom(a.IPv4, 4141),
		netip.AddrPortFrom(a.IPv6, 4141),
	} {
		c := accepted(t, a, direct, dst)
		if got, err := origdst.Lookup(c); err != nil || got != dst {
			t.Errorf("Lookup of a connection to %s that was not redirected = %v, %v; want %s", dst, got, err, dst)
		}
	}
}

func TestLookupWithoutConntrackSaysSo(t *testing.T) {
	n := netns.New(t)
	a := n.Pod(t, "a") // no nat rules: conntrack is not active in the namespace
	ln, err := a.Listen("tcp", ":4141")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, dst := range []netip.AddrPort{
		netip.AddrPortFrom(a.IPv4, 4141),
		netip.AddrPortFrom(a.IPv6, 4141),
	} {
		c := accepted(t, a, ln, dst)
		if got, err := origdst.Lookup(c); !errors.Is(err, origdst.ErrNotTracked) || !strings.Contains(err.Error(), dst.String()) {
			t.Errorf("Lookup of an untracked connection to %s = %v, %v; want ErrNotTracked naming the address", dst, got, err)
		}
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
