package tcpconnect

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listen returns a loopback listener closed when the test ends.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// looks records what a Dialer's looks at the socket found, in order (the first 64).
type looks chan socketState

func newLooks() looks { return make(looks, 64) }

func (l looks) record(st socketState) {
	select {
	case l <- st:
	default:
	}
}

// first returns what the first look not yet returned found; without one in 30s it marks
// t failed and returns false.
func (l looks) first(t *testing.T) (socketState, bool) {
	select {
	case st := <-l:
		return st, true
	case <-time.After(30 * time.Second):
		t.Error("the timeout was never looked at")
		return 0, false
	}
}

// TestConnectionEstablishedBeforeALateLookIsKept stands for a proxy whose threads were
// off the CPU past the connect timeout: the timeout has passed (1ns) but the socket is
// looked at only once the kernel has established the connection (the listener accepted
// it). The look finds it established and the connection is used. net.Dialer{Timeout:
// 1ns} fails here with "i/o timeout", as the proxy's connector did for a loopback
// application under load.
func TestConnectionEstablishedBeforeALateLookIsKept(t *testing.T) {
	ln := listen(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	var server net.Conn
	looks := newLooks()
	d := &Dialer{Timeout: time.Nanosecond, hooks: testHooks{
		looked: looks.record,
		look: func() {
			if server != nil {
				return
			}
			select {
			case server = <-accepted:
			case <-time.After(30 * time.Second):
			}
		},
	}}
	c, err := d.DialContext(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatalf("connection established before the timeout was looked at: %v", err)
	}
	defer c.Close()
	if st, ok := looks.first(t); ok && st != established {
		t.Fatalf("the look after the listener accepted found %v, want established", st)
	}
	if server == nil {
		t.Fatal("the listener never accepted the connection")
	}
	defer server.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("writing on the kept connection: %v", err)
	}
	b := make([]byte, 1)
	if _, err := server.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("the accepted side read %q, %v", b, err)
	}
}

// TestConnectIssuedAfterTheTimeoutGetsTheTimeout stands for a proxy whose dialling
// goroutine was off the CPU past the timeout before it issued the connect: the timeout
// (1ns) is looked at while the connect is not issued yet, so the connect gets the timeout
// again, and the loopback connection, established as soon as it is issued, is used.
// net.Dialer's deadline, running from before the socket exists, fails it.
func TestConnectIssuedAfterTheTimeoutGetsTheTimeout(t *testing.T) {
	ln := listen(t)
	go func() {
		if c, err := ln.Accept(); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}()
	looks := newLooks()
	d := &Dialer{Timeout: time.Nanosecond, hooks: testHooks{
		looked: looks.record,
		clockStarted: func() {
			// The connect is issued only once the timeout has been looked at.
			if st, ok := looks.first(t); ok && st != notIssued {
				t.Errorf("the look before the connect found %v, want notIssued", st)
			}
		},
	}}
	c, err := d.DialContext(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatalf("a connect issued after its timeout was first looked at: %v", err)
	}
	c.Close()
}

// fullListener returns the address of a loopback listener with a backlog of 0 that never
// accepts: once its accept queue holds a connection, the kernel drops further SYNs, so
// connects to it stay in progress.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// TestConnectNotEstablishedTimesOut connects to a listener whose accept queue is full
// until a connect stays in progress past the timeout: it fails with a timeout error
// naming the address and the timeout, which is context.DeadlineExceeded as net.Dialer's is.
func TestConnectNotEstablishedTimesOut(t *testing.T) {
	addr := fullListener(t)
	d := &Dialer{Timeout: 50 * time.Millisecond}
	var kept []net.Conn
	defer func() {
		for _, c := range kept {
			c.Close()
		}
	}()
	// The first connects fill the accept queue (the kernel may take one or two); a later
	// one is never established.
	for range 16 {
		c, err := d.DialContext(context.Background(), addr)
		if err == nil {
			kept = append(kept, c)
			continue
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v (%T): want a timeout that is context.DeadlineExceeded", err, err)
		}
		for _, want := range []string{addr, "not established within 50ms"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		return
	}
	t.Fatalf("16 connects to a listener that never accepts were all established")
}

// TestRefusedConnectFailsAtOnce checks a refused connect is reported as refused, without
// waiting for the timeout.
func TestRefusedConnectFailsAtOnce(t *testing.T) {
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	d := &Dialer{Timeout: time.Hour}
	_, err := d.DialContext(context.Background(), addr)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("got %v, want connection refused", err)
	}
}

// TestCallerCancellationIsNotATimeout checks a connect ended by the caller's context
// returns the context's error, not a connect timeout.
func TestCallerCancellationIsNotATimeout(t *testing.T) {
	addr := fullListener(t)
	ctx, cancel := context.WithCancel(context.Background())
	var kept []net.Conn
	defer func() {
		for _, c := range kept {
			c.Close()
		}
	}()
	// Fill the accept queue with connects the timeout lets through, then one the caller
	// cancels while it is in progress (the hook runs while the connect waits).
	for range 16 {
		d := &Dialer{Timeout: 50 * time.Millisecond, hooks: testHooks{look: cancel}}
		c, err := d.DialContext(ctx, addr)
		if err == nil {
			kept = append(kept, c)
			ctx, cancel = context.WithCancel(context.Background())
			continue
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want the caller's context.Canceled", err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%v reported as a timeout", err)
		}
		return
	}
	t.Fatal("16 connects to a listener that never accepts were all established")
}
