// Package tcpconnect opens the proxy's TCP connections with a connect timeout that
// counts the kernel's time to establish a connection, not the proxy's own delays.
//
// net.Dialer's Timeout is a deadline in the runtime's poller, set before the socket even
// exists. On a loaded machine it fails connects the kernel had no chance to fail: the
// dialling goroutine, woken after the deadline, reports "i/o timeout" for a connection
// established long before; or the goroutine waited for a CPU past the deadline before it
// asked the kernel to connect at all. A loopback connect to a listening application,
// which the kernel completes within microseconds, then failed requests whenever the
// proxy's threads were kept off the CPU for the inbound default of 100ms. A Dialer's
// clock starts as the connect is issued, and when the timeout has passed it looks at the
// socket: a connection established by then is used, a connect not yet issued gets the
// timeout again, and only one the kernel is still establishing (SYN sent, no answer) is
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

	"golang.org/x/sys/unix"
)

// Dialer opens TCP connections. The zero value has no connect timeout and the runtime's
// default keepalive.
type Dialer struct {
	// Timeout, when positive, bounds how long the kernel may take to establish a
	// connection once asked to: one still being established when it has passed fails
	// with a *net.OpError whose Timeout() is true and which is context.DeadlineExceeded,
	// as net.Dialer's timeout is.
	Timeout time.Duration
	// KeepAlive is the TCP keepalive period of the connection, as net.Dialer's (negative:
	// no keepalive probes; zero: the runtime's default).
	KeepAlive time.Duration

	hooks testHooks
}

// testHooks let tests stand for a proxy that runs late.
type testHooks struct {
	// clockStarted runs in the dialling goroutine just after the timeout's clock started,
	// before the connect is issued.
	clockStarted func()
	// look runs when the timeout has passed, before the socket is looked at; looked
	// gets what the look found.
	look   func()
	looked func(socketState)
}

// socketState is what a look at the socket found.
type socketState int

const (
	// closedSocket: the dial already ended.
	closedSocket socketState = iota
	// notIssued: the connect is not issued yet.
	notIssued
	// inProgress: the kernel is establishing the connection (SYN sent).
	inProgress
	// established: the kernel established the connection (or got past it).
	established
)

// errTimedOut is the cancellation cause of a connect abandoned at its timeout.
var errTimedOut = errors.New("connect timed out")

// DialContext connects to addr ("ip:port" or "host:port") over TCP. It ends early when ctx
// ends, with ctx's error. With a host name, each address tried has the timeout, and the
// first one that runs out ends the dial; resolving the name is bounded by ctx only (the
// proxy dials addresses).
func (d *Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	if d.Timeout <= 0 {
		nd := net.Dialer{KeepAlive: d.KeepAlive}
		return nd.DialContext(ctx, "tcp", addr)
	}
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu      sync.Mutex
		done    bool
		watches []*watch
	)
	nd := net.Dialer{KeepAlive: d.KeepAlive, ControlContext: func(_ context.Context, _, _ string, c syscall.RawConn) error {
		// net.Dialer issues the connect right after this hook: the clock starts here.
		w := &watch{d: d, raw: c, cancel: cancel, mu: &mu, done: &done}
		mu.Lock()
		w.timer = time.AfterFunc(d.Timeout, w.look)
		watches = append(watches, w)
		mu.Unlock()
		if d.hooks.clockStarted != nil {
			d.hooks.clockStarted()
		}
		return nil
	}}
	conn, err := nd.DialContext(dctx, "tcp", addr)
	mu.Lock()
	done = true
	for _, w := range watches {
		w.timer.Stop()
	}
	mu.Unlock()
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(dctx), errTimedOut) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: opAddr(addr), Err: timeoutError{d.Timeout}}
	}
	return conn, err
}

// watch is the timeout of one connect attempt.
type watch struct {
	d      *Dialer
	raw    syscall.RawConn
	cancel context.CancelCauseFunc
	mu     *sync.Mutex // guards timer and done
	done   *bool       // the dial returned
	timer  *time.Timer
}

// look runs when the timeout has passed: it abandons a connect the kernel is still
// establishing and gives one not yet issued the timeout again.
func (w *watch) look() {
	if w.d.hooks.look != nil {
		w.d.hooks.look()
	}
	st := state(w.raw)
	if w.d.hooks.looked != nil {
		w.d.hooks.looked(st)
	}
	switch st {
	case inProgress:
		w.cancel(errTimedOut)
	case notIssued:
		w.mu.Lock()
		if !*w.done {
			w.timer.Reset(w.d.Timeout)
		}
		w.mu.Unlock()
	}
}

// state looks at the socket behind c.
func state(c syscall.RawConn) socketState {
	st := closedSocket
	if err := c.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		switch {
		case err != nil:
		case info.State == unix.BPF_TCP_CLOSE:
			st = notIssued
		case info.State == unix.BPF_TCP_SYN_SENT:
			st = inProgress
		default:
			st = established
		}
	}); err != nil {
		return closedSocket
	}
	return st
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
