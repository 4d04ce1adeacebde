// Package tcpconnect opens the proxy's TCP connections with a connect timeout that is
// judged by the socket, not by when the proxy's goroutine next runs.
//
// net.Dialer's Timeout is a deadline in the runtime's poller: when the dialling goroutine
// is woken after the deadline, the dial fails with "i/o timeout" even if the kernel
// established the connection long before. On a loaded machine a loopback connect to a
// listening application, which the kernel completes within microseconds, then fails the
// request whenever the proxy's threads were kept off the CPU for longer than the timeout
// (the inbound default is 100ms). A Dialer instead looks at the socket when the timeout
// has passed: a connection established by then is used; only one still in progress is
// abandoned, as Linkerd's proxy polls the connect before its timer.
package tcpconnect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Dialer opens TCP connections. The zero value has no connect timeout and the runtime's
// default keepalive.
type Dialer struct {
	// Timeout, when positive, bounds how long the kernel may take to establish a
	// connection: one not established when the timeout has passed fails with a
	// *net.OpError whose Timeout() is true and which is context.DeadlineExceeded, as
	// net.Dialer's timeout is.
	Timeout time.Duration
	// KeepAlive is the TCP keepalive period of the connection, as net.Dialer's (negative:
	// no keepalive probes; zero: the runtime's default).
	KeepAlive time.Duration

	// atTimeout, when set, runs when the timeout has passed, before the socket is looked
	// at; tests use it to stand for a proxy that looks late.
	atTimeout func()
}

// errTimedOut is the cancellation cause of a connect abandoned at its timeout.
var errTimedOut = errors.New("connect timed out")

// DialContext connects to addr ("ip:port" or "host:port") over TCP. It ends early when ctx
// ends, with ctx's error.
func (d *Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	if d.Timeout <= 0 {
		nd := net.Dialer{KeepAlive: d.KeepAlive}
		return nd.DialContext(ctx, "tcp", addr)
	}
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu  sync.Mutex
		raw syscall.RawConn // the socket being connected, once created
	)
	nd := net.Dialer{KeepAlive: d.KeepAlive, ControlContext: func(_ context.Context, _, _ string, c syscall.RawConn) error {
		mu.Lock()
		raw = c
		mu.Unlock()
		return nil
	}}
	timer := time.AfterFunc(d.Timeout, func() {
		if d.atTimeout != nil {
			d.atTimeout()
		}
		mu.Lock()
		c := raw
		mu.Unlock()
		if c == nil || !established(c) {
			cancel(errTimedOut)
		}
	})
	conn, err := nd.DialContext(dctx, "tcp", addr)
	timer.Stop()
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(dctx), errTimedOut) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: opAddr(addr), Err: timeoutError{d.Timeout}}
	}
	return conn, err
}

// established reports whether the socket behind c has completed its connect (it has a
// peer). A socket already closed (the dial failed) has not.
func established(c syscall.RawConn) bool {
	ok := false
	if err := c.Control(func(fd uintptr) {
		_, err := syscall.Getpeername(int(fd))
		ok = err == nil
	}); err != nil {
		return false
	}
	return ok
}

// timeoutError is a connect not established within its timeout.
type timeoutError struct{ after time.Duration }

func (e timeoutError) Error() string {
	return fmt.Sprintf("not established within %v: i/o timeout", e.after)
}
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }

// Is makes the timeout context.DeadlineExceeded, as net.Dialer's is.
func (e timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// opAddr is addr as a net.Addr for error messages.
type opAddr string

func (a opAddr) Network() string { return "tcp" }
func (a opAddr) String() string  { return string(a) }
