// Package rawsock gives TCP connections reads and writes that bypass the Go scheduler's
// system-call bookkeeping.
//
// A goroutine reading or writing a net.TCPConn enters the runtime's "in system call"
// state for each read(2) and write(2); when the call takes longer than the runtime
// monitor's 20µs tick while other goroutines wait, the monitor hands the goroutine's
// processor to another thread, and under load it keeps polling at that tick. For a proxy
// whose every request is a few socket calls, that handoff traffic (thread wakeups,
// futexes, monitor sleeps) costs more CPU than the proxying itself. The sockets are
// non-blocking (the netpoller owns them), so their reads and writes never sleep in the
// kernel: Conn issues them as raw system calls from the goroutine's own thread and waits
// for readiness through the netpoller, exactly as net.TCPConn does, so deadlines, Close
// and half-closes behave the same.
package rawsock

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write issue raw system calls. Every other method
// (deadlines, CloseWrite, keepalive settings, SyscallConn, ReadFrom/WriteTo) is the
// embedded connection's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn
	// The state of the read and of the write in progress, used by the callbacks made
	// once in Wrap so that a call allocates nothing.
	rmu, wmu sync.Mutex
	r        readState
	w        ioState
	readFn   func(fd uintptr) bool
	writeFn  func(fd uintptr) bool
}

// ioState is one direction's call in progress.
type ioState struct {
	buf   []byte
	n     int
	errno syscall.Errno
}

// readState is the read in progress: get and put lend the buffer of a ReadWith (buf is
// nil while it waits). The write has none, so that a Conn stays small.
type readState struct {
	ioState
	get func() []byte
	put func([]byte)
}

// Wrap returns c as a *Conn when it is a *net.TCPConn, and c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	c2 := &Conn{TCPConn: tc, rc: rc}
	c2.readFn = c2.read
	c2.writeFn = c2.write
	return c2
}

// maxRW bounds one system call's length, as package net does.
const maxRW = 1 << 30

// Read reads like net.TCPConn.Read: io.EOF at the end of the stream, a *net.OpError
// otherwise (timeouts and closed connections unwrap to os.ErrDeadlineExceeded and
// net.ErrClosed).
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return c.TCPConn.Read(b)
	}
	if len(b) > maxRW {
		b = b[:maxRW]
	}
	c.rmu.Lock()
	c.r = readState{ioState: ioState{buf: b}}
	err := c.rc.Read(c.readFn)
	n, errno := c.r.n, c.r.errno
	c.r.buf = nil
	c.rmu.Unlock()
	if err != nil {
		return 0, c.opError("read", err)
	}
	if errno != 0 {
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// ReadWith reads like Read into a buffer it asks of get only when it attempts a read:
// when the socket has no input yet, the buffer goes back through put while the
// connection waits, so that a connection waiting for input holds no buffer. It returns
// the buffer read into with the count (n > 0), or a nil buffer with io.EOF or the error,
// the buffer then handed back through put.
func (c *Conn) ReadWith(get func() []byte, put func([]byte)) (buf []byte, n int, err error) {
	c.rmu.Lock()
	c.r.get, c.r.put = get, put
	err = c.rc.Read(c.readFn)
	buf, n, errno := c.r.buf, c.r.n, c.r.errno
	c.r.buf, c.r.n, c.r.errno, c.r.get, c.r.put = nil, 0, 0, nil, nil
	c.rmu.Unlock()
	if n > 0 && err == nil && errno == 0 {
		return buf, n, nil
	}
	return nil, 0, c.readWithError(buf, put, err, errno)
}

// readWithError hands back the buffer of a ReadWith that read nothing and returns its
// error (kept out of ReadWith, whose frame stays on the stack of a waiting connection).
func (c *Conn) readWithError(buf []byte, put func([]byte), err error, errno syscall.Errno) error {
	if buf != nil {
		put(buf)
	}
	switch {
	case err != nil:
		return c.opError("read", err)
	case errno != 0:
		return c.opError("read", os.NewSyscallError("read", errno))
	}
	return io.EOF
}

// read is the RawConn callback of Read and ReadWith: false asks the netpoller to wait
// for readiness.
func (c *Conn) read(fd uintptr) bool {
	if c.r.buf == nil {
		c.r.buf = c.r.get()
	}
	b := c.r.buf
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if c.r.put != nil {
				c.r.put(c.r.buf)
				c.r.buf = nil
			}
			return false
		}
		c.r.n, c.r.errno = int(n), errno
		return true
	}
}

// Write writes all of b like net.TCPConn.Write, waiting for the socket to drain when its
// buffer is full.
func (c *Conn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return c.TCPConn.Write(b)
	}
	c.wmu.Lock()
	c.w = ioState{buf: b}
	err := c.rc.Write(c.writeFn)
	nn, errno := c.w.n, c.w.errno
	c.w.buf = nil
	c.wmu.Unlock()
	switch {
	case err != nil:
		return nn, c.opError("write", err)
	case errno != 0:
		return nn, c.opError("write", os.NewSyscallError("write", errno))
	case nn < len(b):
		return nn, c.opError("write", io.ErrUnexpectedEOF)
	}
	return nn, nil
}

// write is the RawConn callback of Write: false asks the netpoller to wait for room.
func (c *Conn) write(fd uintptr) bool {
	b := c.w.buf
	for c.w.n < len(b) {
		chunk := b[c.w.n:]
		if len(chunk) > maxRW {
			chunk = chunk[:maxRW]
		}
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&chunk[0])), uintptr(len(chunk)))
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return false
		case errno != 0:
			c.w.errno = errno
			return true
		case n == 0:
			return true
		}
		c.w.n += int(n)
	}
	return true
}

// opError wraps err as package net does for TCP reads and writes; an error RawConn
// already wrapped keeps its cause under op.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
