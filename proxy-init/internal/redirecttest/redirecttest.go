// Package redirecttest holds what tests of proxy-init's rules share: listeners in a test
// pod that answer with their tag and the connection's original destination, dialling from
// a pod to see where a connection lands, and the nat tables as iptables-save prints them.
package redirecttest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/origdst"
	"github.com/l5d-go/l5d/test/netns"
)

// ServeTagged accepts on ln until the test ends and answers each connection with
// "tag original-destination".
func ServeTagged(t *testing.T, ln net.Listener, tag string) {
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

// Listen listens on addr in pod p and serves it with ServeTagged.
func Listen(t *testing.T, p *netns.Pod, addr, tag string) {
	t.Helper()
	ln, err := p.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, p.PodName, err)
	}
	ServeTagged(t, ln, tag)
}

// Landing dials dst from pod p (as uid when uid >= 0) and returns the answer: where the
// connection landed.
func Landing(t *testing.T, p *netns.Pod, uid int, dst netip.AddrPort) string {
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

// Save returns the nat table that the iptables-save binary bin prints in pod p, without
// comments and counters, which change between runs.
func Save(t *testing.T, p *netns.Pod, bin string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, "-t", "nat")
	cmd.Stdout = &out
	if err := p.Run(cmd); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
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
