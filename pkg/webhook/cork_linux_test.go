package webhook

import (
	"context"
	"crypto/tls"
	"net"
	"syscall"
	"testing"
)

// TestCork: cork sets TCP_CORK on the TCP connection under the request's (TLS) connection
// and the function it returns clears it; without a connection it does nothing.
func TestCork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The kernel completes the connection without an Accept: the dialling side is corked.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	corked := func() int {
		raw, err := conn.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		v, gerr := -1, error(nil)
		if err := raw.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		return v
	}
	ctx := withConn(context.Background(), tls.Client(conn, &tls.Config{}))
	uncork := cork(ctx)
	if got := corked(); got != 1 {
		t.Errorf("TCP_CORK %d while corked, want 1", got)
	}
	uncork()
	if got := corked(); got != 0 {
		t.Errorf("TCP_CORK %d after uncork, want 0", got)
	}
	cork(context.Background())() // no connection: nothing to do, no panic
}
