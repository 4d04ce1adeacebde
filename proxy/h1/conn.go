// Package h1 is the proxy's lean HTTP/1.1 codec: a buffered reader and writer pair per
// connection (their buffers lent by a shared pool: a connection waiting for its next
// message holds none, see IdleReader), message-head parsing that points into the read
// buffer instead of copying, and body framing (Content-Length, chunked,
// read-until-close) that relays bytes verbatim.
//
// It handles the messages a proxy forwards on its fast path and reports everything else
// (obsolete line folding, conflicting framing, upgrades) so that the caller can hand the
// connection to a general-purpose HTTP server instead. Nothing here allocates per message
// once a connection's buffers exist.
package h1

import (
	"errors"
	"io"
	"net"
	"net/textproto"
	"sync"
)

// MaxHeadBytes bounds a message head (start line and header fields).
const MaxHeadBytes = 64 << 10

const defaultBufSize = 8 << 10

// bufPool lends the readers' and writers' buffers of defaultBufSize.
var bufPool = sync.Pool{New: func() any { return new([defaultBufSize]byte) }}

func getBuf() []byte { return bufPool.Get().(*[defaultBufSize]byte)[:] }

// putBuf returns b to the pool unless it is a buffer grown past the default size.
func putBuf(b []byte) {
	if cap(b) == defaultBufSize {
		bufPool.Put((*[defaultBufSize]byte)(b[:defaultBufSize]))
	}
}

// IdleReader is a connection that can wait for input without holding a buffer: ReadWith
// asks get for a buffer only when it attempts a read and hands it back through put when
// the attempt finds no input, then returns the buffer read into with the count (n > 0),
// or a nil buffer and an error (io.EOF at the end of the stream). A Reader over an
// IdleReader holds no buffer while its connection waits for input with nothing unread.
type IdleReader interface {
	ReadWith(get func() []byte, put func([]byte)) (buf []byte, n int, err error)
}

// ErrHeadTooLarge is returned when a message head exceeds MaxHeadBytes.
var ErrHeadTooLarge = errors.New("h1: message head too large")

// Reader is a buffered reader over one connection whose unread bytes stay visible, so a
// connection can be handed on with what was already read (see Buffered).
type Reader struct {
	src io.Reader
	// idle is src when it is an IdleReader.
	idle IdleReader
	// buf is nil or lent by bufPool (or grown past it for a long head); it is handed
	// back whenever nothing unread is left in it and src is an IdleReader.
	buf []byte
	r   int // start of unread data
	w   int // end of unread data
	// before are flushed before every read from src that may block, so that buffered
	// output is never held back while waiting for input.
	before [2]*Writer
	// BeforeRead, when set, is called before every read from the connection with the
	// number of bytes buffered and not consumed (inside ReadRequest: the part of the
	// head already read), for deadlines that follow the reader's progress.
	BeforeRead func(buffered int)
}

// NewReader returns a Reader over src.
func NewReader(src io.Reader) *Reader {
	r := &Reader{}
	r.Reset(src)
	return r
}

// FlushBefore makes the reader flush a and b (either may be nil) before every read from
// its connection that may block.
func (r *Reader) FlushBefore(a, b *Writer) { r.before = [2]*Writer{a, b} }

// Reset discards buffered input and points the reader at src.
func (r *Reader) Reset(src io.Reader) {
	r.src, r.r, r.w = src, 0, 0
	r.idle, _ = src.(IdleReader)
}

// Buffered returns the bytes read from the connection but not yet consumed. The slice is
// valid until the next call on the Reader.
func (r *Reader) Buffered() []byte { return r.buf[r.r:r.w] }

// ReadFull fills p from the buffer and then the connection (a body of known length).
func (r *Reader) ReadFull(p []byte) error {
	for len(p) > 0 {
		if err := r.readSome(); err != nil {
			return truncated(err)
		}
		n := copy(p, r.buf[r.r:r.w])
		r.r += n
		p = p[n:]
	}
	return nil
}

// Release hands the buffer back to the pool when nothing unread is left in it, for a
// connection set aside with no read under way (a pooled one); the next read borrows one.
func (r *Reader) Release() {
	if r.r == r.w && r.buf != nil {
		putBuf(r.buf)
		r.buf, r.r, r.w = nil, 0, 0
	}
}

// Discard consumes n buffered bytes; n must not exceed len(Buffered()).
func (r *Reader) Discard(n int) { r.r += n }

// fill reads more data from the source into the buffer, compacting or growing it up to
// limit bytes. It returns io.EOF only when no byte was read.
func (r *Reader) fill(limit int) error {
	if r.r == r.w && r.idle != nil {
		return r.fillIdle()
	}
	if r.buf == nil {
		r.buf = getBuf()
	}
	if r.r > 0 {
		n := copy(r.buf, r.buf[r.r:r.w])
		r.r, r.w = 0, n
	}
	if r.w == len(r.buf) {
		if len(r.buf) >= limit {
			return ErrHeadTooLarge
		}
		nb := make([]byte, min(2*len(r.buf), limit))
		copy(nb, r.buf[:r.w])
		putBuf(r.buf)
		r.buf = nb
	}
	if err := r.beforeRead(); err != nil {
		return err
	}
	n, err := r.src.Read(r.buf[r.w:])
	r.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// beforeRead flushes the writers and calls BeforeRead before a read that may block.
func (r *Reader) beforeRead() error {
	for _, w := range r.before {
		if w != nil && w.buf != nil {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	if r.BeforeRead != nil {
		r.BeforeRead(r.w - r.r)
	}
	return nil
}

// readDirect reads from the source into p, with nothing unread in the buffer (which goes
// back to the pool when the source is an IdleReader, as fillIdle's does). It returns an
// error only when no byte was read.
func (r *Reader) readDirect(p []byte) (int, error) {
	if r.buf != nil && r.idle != nil {
		putBuf(r.buf)
		r.buf = nil
	}
	r.r, r.w = 0, 0
	if err := r.beforeRead(); err != nil {
		return 0, err
	}
	n, err := r.src.Read(p)
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return 0, err
}

// fillIdle is fill with nothing unread and an IdleReader source: the buffer goes back
// to the pool, and one is lent again only when input arrives.
func (r *Reader) fillIdle() error {
	if r.buf != nil {
		putBuf(r.buf)
		r.buf = nil
	}
	r.r, r.w = 0, 0
	if err := r.beforeRead(); err != nil {
		return err
	}
	buf, n, err := r.idle.ReadWith(getBuf, putBuf)
	if n > 0 {
		r.buf, r.w = buf, n
		return nil
	}
	if buf != nil {
		putBuf(buf)
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// readSome makes at least one unread byte available, reading from the source if the
// buffer is empty.
func (r *Reader) readSome() error {
	if r.r < r.w {
		return nil
	}
	r.r, r.w = 0, 0
	return r.fill(len(r.buf))
}

// Writer is a buffered writer over one connection. Its buffer is lent by a pool from the
// first write to the next Flush, so that a connection with nothing to send holds none.
type Writer struct {
	dst io.Writer
	buf []byte // nil, or lent by bufPool
}

// NewWriter returns a Writer over dst.
func NewWriter(dst io.Writer) *Writer {
	return &Writer{dst: dst}
}

// Buffered returns the number of bytes waiting to be flushed.
func (w *Writer) Buffered() int { return len(w.buf) }

// Flush writes the buffered bytes to the connection and hands the buffer back.
func (w *Writer) Flush() error {
	if w.buf == nil {
		return nil
	}
	var err error
	if len(w.buf) > 0 {
		_, err = w.dst.Write(w.buf)
	}
	putBuf(w.buf)
	w.buf = nil
	return err
}

// room makes room for n more bytes that do not fit in the buffer as it is: it writes
// out what the buffer holds, or borrows one; false means that n bytes are too many for
// an empty buffer and go straight through.
func (w *Writer) room(n int) (bool, error) {
	if len(w.buf)+n <= cap(w.buf) {
		return true, nil
	}
	if len(w.buf) > 0 {
		_, err := w.dst.Write(w.buf)
		w.buf = w.buf[:0]
		if err != nil {
			return false, err
		}
	}
	if n >= defaultBufSize {
		return false, nil
	}
	if w.buf == nil {
		w.buf = getBuf()[:0]
	}
	return true, nil
}

// Write buffers p, flushing when the buffer is full; large writes go straight through.
func (w *Writer) Write(p []byte) (int, error) {
	if len(w.buf)+len(p) > cap(w.buf) {
		ok, err := w.room(len(p))
		switch {
		case err != nil:
			return 0, err
		case !ok:
			return w.dst.Write(p)
		}
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// WriteString is Write for a string.
func (w *Writer) WriteString(s string) (int, error) {
	if len(w.buf)+len(s) > cap(w.buf) {
		ok, err := w.room(len(s))
		switch {
		case err != nil:
			return 0, err
		case !ok:
			return w.dst.Write([]byte(s))
		}
	}
	w.buf = append(w.buf, s...)
	return len(s), nil
}

// WriteFieldName writes name, a field name (a token), in the canonical form of
// http.CanonicalHeaderKey (textproto.CanonicalMIMEHeaderKey): upper-case letters first and after each '-', lower-case
// letters elsewhere. A proxy writes with it, without building a string, the names of
// fields it received in another form (HTTP/2's lower-case ones).
func (w *Writer) WriteFieldName(name string) (int, error) {
	if len(w.buf)+len(name) > cap(w.buf) {
		ok, err := w.room(len(name))
		switch {
		case err != nil:
			return 0, err
		case !ok:
			return w.dst.Write([]byte(textproto.CanonicalMIMEHeaderKey(name)))
		}
	}
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		w.buf = append(w.buf, c)
		upper = c == '-'
	}
	return len(name), nil
}

// Reset discards buffered output and points the writer at dst.
func (w *Writer) Reset(dst io.Writer) {
	if w.buf != nil {
		putBuf(w.buf)
	}
	w.dst, w.buf = dst, nil
}

// isEOFish reports whether err means the peer closed the connection.
func isEOFish(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
