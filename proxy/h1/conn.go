// Package h1 is the proxy's lean HTTP/1.1 codec: a buffered reader and writer pair per
// connection, message-head parsing that points into the read buffer instead of copying,
// and body framing (Content-Length, chunked, read-until-close) that relays bytes verbatim.
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
)

// MaxHeadBytes bounds a message head (start line and header fields).
const MaxHeadBytes = 64 << 10

const defaultBufSize = 8 << 10

// ErrHeadTooLarge is returned when a message head exceeds MaxHeadBytes.
var ErrHeadTooLarge = errors.New("h1: message head too large")

// Reader is a buffered reader over one connection whose unread bytes stay visible, so a
// connection can be handed on with what was already read (see Buffered).
type Reader struct {
	src io.Reader
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
	return &Reader{src: src, buf: make([]byte, defaultBufSize)}
}

// FlushBefore makes the reader flush a and b (either may be nil) before every read from
// its connection that may block.
func (r *Reader) FlushBefore(a, b *Writer) { r.before = [2]*Writer{a, b} }

// Reset discards buffered input and points the reader at src.
func (r *Reader) Reset(src io.Reader) { r.src, r.r, r.w = src, 0, 0 }

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

// Discard consumes n buffered bytes; n must not exceed len(Buffered()).
func (r *Reader) Discard(n int) { r.r += n }

// fill reads more data from the source into the buffer, compacting or growing it up to
// limit bytes. It returns io.EOF only when no byte was read.
func (r *Reader) fill(limit int) error {
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
		r.buf = nb
	}
	for _, w := range r.before {
		if w != nil && len(w.buf) > 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	if r.BeforeRead != nil {
		r.BeforeRead(r.w - r.r)
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

// readSome makes at least one unread byte available, reading from the source if the
// buffer is empty.
func (r *Reader) readSome() error {
	if r.r < r.w {
		return nil
	}
	r.r, r.w = 0, 0
	return r.fill(len(r.buf))
}

// Writer is a buffered writer over one connection.
type Writer struct {
	dst io.Writer
	buf []byte
}

// NewWriter returns a Writer over dst.
func NewWriter(dst io.Writer) *Writer {
	return &Writer{dst: dst, buf: make([]byte, 0, defaultBufSize)}
}

// Buffered returns the number of bytes waiting to be flushed.
func (w *Writer) Buffered() int { return len(w.buf) }

// Flush writes the buffered bytes to the connection.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.dst.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// Write buffers p, flushing when the buffer is full; large writes go straight through.
func (w *Writer) Write(p []byte) (int, error) {
	if len(w.buf)+len(p) <= cap(w.buf) {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	if len(p) >= cap(w.buf) {
		return w.dst.Write(p)
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// WriteString is Write for a string.
func (w *Writer) WriteString(s string) (int, error) {
	if len(w.buf)+len(s) <= cap(w.buf) {
		w.buf = append(w.buf, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// Reset discards buffered output and points the writer at dst.
func (w *Writer) Reset(dst io.Writer) { w.dst, w.buf = dst, w.buf[:0] }

// isEOFish reports whether err means the peer closed the connection.
func isEOFish(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
