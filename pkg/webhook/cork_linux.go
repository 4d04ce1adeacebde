package webhook

import (
	"context"
	"syscall"
)

// cork holds back partial segments of ctx's connection (TCP_CORK) until the function it
// returns is called; without a TCP connection it does nothing.
func cork(ctx context.Context) (uncork func()) {
	c := tcpConn(ctx)
	if c == nil {
		return func() {}
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return func() {}
	}
	set := func(v int) {
		_ = raw.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v) })
	}
	set(1)
	return func() { set(0) }
}
