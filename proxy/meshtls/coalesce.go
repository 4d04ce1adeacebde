package meshtls

import (
	"crypto/tls"
	"net"
	"sync"
)

// maxRecordPlaintext is the most a TLS record carries: a Write of more is sent as several
// records, which crypto/tls writes to its transport one by one.
const maxRecordPlaintext = 16 << 10

// coalescer is the transport under a mesh TLS connection. While a Write of several
// records is under way (hold ... release), the records crypto/tls writes are gathered and
// go out together in one system call on release, instead of one each (an HTTP/2 batch of
// 16 KiB of DATA and its frame header is two records: a full one and one of 9 bytes).
// Writes outside a hold go straight through. It holds no buffer between writes.
type coalescer struct {
	net.Conn
	mu      sync.Mutex
	holders int
	buf     *[]byte
}

var gatherPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (c *coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holders == 0 {
		return c.Conn.Write(p)
	}
	if c.buf == nil {
		c.buf = gatherPool.Get().(*[]byte)
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

func (c *coalescer) hold() {
	c.mu.Lock()
	c.holders++
	c.mu.Unlock()
}

// release ends a hold and writes what was gathered when no other hold is under way
// (order is kept: everything written during a hold is gathered in turn).
func (c *coalescer) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holders--
	if c.holders > 0 || c.buf == nil {
		return nil
	}
	b := c.buf
	c.buf = nil
	_, err := c.Conn.Write(*b)
	if cap(*b) <= 1<<20 { // a huge one goes to the collector
		*b = (*b)[:0]
		gatherPool.Put(b)
	}
	return err
}

// meshConn is an established mesh TLS connection (its *tls.Conn hidden: HTTP transports
// must treat it as a plain transport). A Write of more than one record goes out in one
// system call (see coalescer).
type meshConn struct {
	net.Conn // the *tls.Conn
	out      *coalescer
	id       string // the server identity it proved (Connector's connections only)
}

// newMeshConn returns tc, whose transport is out, as a meshConn.
func newMeshConn(tc *tls.Conn, out *coalescer) *meshConn { return &meshConn{Conn: tc, out: out} }

func (c *meshConn) Write(p []byte) (int, error) {
	if len(p) <= maxRecordPlaintext {
		return c.Conn.Write(p) // one record: one write already
	}
	c.out.hold()
	n, err := c.Conn.Write(p)
	if rerr := c.out.release(); err == nil && rerr != nil {
		err = rerr
	}
	return n, err
}
