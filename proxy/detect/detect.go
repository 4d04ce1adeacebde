// Package detect finds out which protocol a client speaks from the first bytes it sends:
// HTTP/1.x (a request line), HTTP/2 with prior knowledge (the connection preface), or
// anything else, which the proxy treats as opaque TCP.
package detect

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Protocol is a detected application protocol.
type Protocol uint8

// Protocols.
const (
	// Opaque is any protocol other than HTTP, including a client that sent nothing before
	// the timeout (server-speaks-first) or closed the connection.
	Opaque Protocol = iota
	// HTTP1 is an HTTP/1.0 or HTTP/1.1 request line.
	HTTP1
	// HTTP2 is the HTTP/2 prior-knowledge connection preface.
	HTTP2
)

func (p Protocol) String() string {
	switch p {
	case HTTP1:
		return "HTTP/1"
	case HTTP2:
		return "HTTP/2"
	}
	return "opaque"
}

// Preface is the HTTP/2 client connection preface.
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// MaxPeek is how many bytes detection reads at most. A request line that is not complete
// within it is still HTTP/1 if it starts with a method and a space.
const MaxPeek = 4096

var bufPool = sync.Pool{New: func() any { b := make([]byte, MaxPeek); return &b }}

// verdict classifies the bytes read so far: done reports whether more bytes could change it.
func verdict(b []byte) (p Protocol, done bool) {
	if len(b) == 0 {
		return Opaque, false
	}
	// HTTP/2 preface, or a prefix of it.
	n := min(len(b), len(Preface))
	if string(b[:n]) == Preface[:n] {
		if n == len(Preface) {
			return HTTP2, true
		}
		return Opaque, false
	}
	// HTTP/1: METHOD SP target SP HTTP/1.x CRLF
	i := 0
	for i < len(b) && isTokenChar(b[i]) {
		i++
	}
	if i == len(b) {
		return Opaque, i >= len(b) && len(b) >= MaxPeek
	}
	if i == 0 || b[i] != ' ' {
		return Opaque, true
	}
	line := b
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		if len(b) >= MaxPeek {
			return HTTP1, true // an over-long request line; the HTTP server rejects it properly
		}
		return Opaque, false
	}
	line = bytes.TrimSuffix(b[:nl], []byte{'\r'})
	sp := bytes.LastIndexByte(line, ' ')
	if sp <= i {
		return Opaque, true
	}
	v := line[sp+1:]
	if len(v) == 8 && string(v[:7]) == "HTTP/1." && v[7] >= '0' && v[7] <= '9' {
		return HTTP1, true
	}
	return Opaque, true
}

// isTokenChar reports whether c may appear in an HTTP method (RFC 9110 tchar).
func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// Classify returns the protocol of a complete first read, for callers that already hold
// the bytes; it never waits. Bytes that are a prefix of something are Opaque.
func Classify(b []byte) Protocol {
	p, _ := verdict(b)
	return p
}

// Partial returns the protocol b is the start of, for bytes detection could not decide
// on (the client paused or closed before a whole request line): HTTP2 for a prefix of the
// HTTP/2 preface, HTTP1 for bytes that may still become an HTTP/1 request line, and the
// verdict itself for bytes that are decided. No bytes at all are Opaque.
func Partial(b []byte) Protocol {
	if len(b) == 0 {
		return Opaque
	}
	p, done := verdict(b)
	if done {
		return p
	}
	if n := min(len(b), len(Preface)); string(b[:n]) == Preface[:n] {
		return HTTP2
	}
	return HTTP1
}

// Detect reads from conn until the protocol is known, the client stops sending for
// timeout, the connection ends, or MaxPeek bytes are read. It returns the protocol and a
// Conn that replays the bytes read before reading on from conn. A timeout or end of input
// is not an error: the result is Opaque. Other read errors are returned with a nil Conn.
func Detect(conn net.Conn, timeout time.Duration) (Protocol, *Conn, error) {
	bp := bufPool.Get().(*[]byte)
	buf := *bp
	if timeout > 0 {
		if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			bufPool.Put(bp)
			return Opaque, nil, err
		}
	}
	n := 0
	proto := Opaque
	for n < len(buf) {
		m, err := conn.Read(buf[n:])
		n += m
		p, done := verdict(buf[:n])
		if done {
			proto = p
			break
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || isEOF(err) {
				break
			}
			bufPool.Put(bp)
			return Opaque, nil, err
		}
	}
	if timeout > 0 {
		if err := conn.SetReadDeadline(time.Time{}); err != nil {
			bufPool.Put(bp)
			return Opaque, nil, err
		}
	}
	c := &Conn{Conn: conn, pooled: bp, pending: buf[:n]}
	if n == 0 {
		c.release()
	}
	return proto, c, nil
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// Conn is a connection whose first reads return the bytes consumed by detection.
type Conn struct {
	net.Conn
	pooled  *[]byte
	pending []byte
}

// Read returns replayed bytes first, then reads from the connection.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.release()
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// Buffered returns the replayed bytes not yet read.
func (c *Conn) Buffered() []byte { return c.pending }

func (c *Conn) release() {
	if c.pooled != nil {
		bufPool.Put(c.pooled)
		c.pooled, c.pending = nil, nil
	}
}

// NetConn returns the underlying connection, for half-close and socket options. Reading
// from it directly skips any bytes not yet replayed (see Buffered).
func (c *Conn) NetConn() net.Conn { return c.Conn }
