package h1

import (
	"bytes"
	"errors"
	"io"
)

// ErrBodyTruncated is returned when the connection ends inside a message body.
var ErrBodyTruncated = errors.New("h1: connection closed inside a message body")

// maxChunkLine bounds a chunk-size line (size, extensions) or a trailer line.
const maxChunkLine = 4 << 10

// CopyFixed relays exactly n body bytes from r to w.
func CopyFixed(w *Writer, r *Reader, n int64) error {
	for n > 0 {
		if err := r.readSome(); err != nil {
			return truncated(err)
		}
		b := r.buf[r.r:r.w]
		if int64(len(b)) > n {
			b = b[:n]
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		r.r += len(b)
		n -= int64(len(b))
	}
	return nil
}

// CopyUntilEOF relays bytes from r to w until the connection closes (a response body
// delimited by the end of the connection).
func CopyUntilEOF(w *Writer, r *Reader) error {
	for {
		if err := r.readSome(); err != nil {
			if isEOFish(err) {
				return nil
			}
			return err
		}
		if _, err := w.Write(r.buf[r.r:r.w]); err != nil {
			return err
		}
		r.r = r.w
	}
}

// CopyChunked relays a chunked body from r to w verbatim, chunk extensions and trailer
// fields included, and checks its framing as it goes.
func CopyChunked(w *Writer, r *Reader) error {
	for {
		line, err := r.line()
		if err != nil {
			return err
		}
		size, err := chunkSize(line)
		if err != nil {
			return err
		}
		if _, err := w.Write(r.buf[r.r : r.r+len(line)]); err != nil {
			return err
		}
		r.r += len(line)
		if size == 0 {
			return r.copyTrailers(w)
		}
		if err := CopyFixed(w, r, size); err != nil {
			return err
		}
		crlf, err := r.line()
		if err != nil {
			return err
		}
		if len(crlf) > 2 || (len(crlf) == 2 && crlf[0] != '\r') {
			return malformed("chunk data longer than its size")
		}
		if _, err := w.Write(crlf); err != nil {
			return err
		}
		r.r += len(crlf)
	}
}

// copyTrailers relays trailer lines through the final empty line.
func (r *Reader) copyTrailers(w *Writer) error {
	for {
		line, err := r.line()
		if err != nil {
			return err
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		r.r += len(line)
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			return nil
		}
	}
}

// line returns the next line in the buffer, its line ending included, without consuming
// it; it reads more input as needed.
func (r *Reader) line() ([]byte, error) {
	scanned := 0
	for {
		b := r.buf[r.r:r.w]
		for i := scanned; i < len(b); i++ {
			if b[i] == '\n' {
				return b[:i+1], nil
			}
		}
		scanned = len(b)
		if scanned >= maxChunkLine {
			return nil, malformed("chunk line longer than %d bytes", maxChunkLine)
		}
		if err := r.fill(len(r.buf)); err != nil {
			if err == ErrHeadTooLarge {
				// The buffer is full of a partial line that is still short: grow it.
				nb := make([]byte, 2*len(r.buf))
				copy(nb, r.buf[r.r:r.w])
				r.buf, r.w, r.r = nb, r.w-r.r, 0
				continue
			}
			return nil, truncated(err)
		}
	}
}

// chunkSize parses a chunk-size line ("1a;ext=v\r\n").
func chunkSize(line []byte) (int64, error) {
	var n int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			if digits == 0 {
				return 0, malformed("chunk size line %q", trunc(line))
			}
			switch c {
			case ';', ' ', '\t', '\r', '\n':
				return n, nil
			}
			return 0, malformed("chunk size line %q", trunc(line))
		}
		if digits == 15 {
			return 0, malformed("chunk size too large")
		}
		n = n<<4 | int64(d)
		digits++
	}
	return 0, malformed("chunk size line %q", trunc(line))
}

func truncated(err error) error {
	if isEOFish(err) || err == io.ErrNoProgress {
		return ErrBodyTruncated
	}
	return err
}

// Read reads unconsumed bytes: those buffered first, then from the connection. It
// serves bodies the caller delimits itself (a known length, or the end of the
// connection).
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := r.readSome(); err != nil {
		return 0, err
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

// ChunkedBody decodes a chunked message body read from R: Read returns the chunk data
// and io.EOF after the last chunk and the trailer section, whose fields are passed to
// Trailer (when set) as they are read. The zero value with R set is ready to use.
type ChunkedBody struct {
	R *Reader
	// Trailer receives each trailer field; the slices are valid only during the call.
	Trailer func(name, value []byte)
	left    int64 // data bytes left in the current chunk
	started bool  // a chunk was read, so a CRLF precedes the next size line
	done    bool
}

// Read implements io.Reader.
func (b *ChunkedBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	r := b.R
	if b.left == 0 {
		if b.started {
			crlf, err := r.line()
			if err != nil {
				return 0, err
			}
			if len(crlf) > 2 || (len(crlf) == 2 && crlf[0] != '\r') {
				return 0, malformed("chunk data longer than its size")
			}
			r.r += len(crlf)
		}
		line, err := r.line()
		if err != nil {
			return 0, err
		}
		size, err := chunkSize(line)
		if err != nil {
			return 0, err
		}
		r.r += len(line)
		b.started = true
		if size == 0 {
			if err := b.readTrailers(); err != nil {
				return 0, err
			}
			b.done = true
			return 0, io.EOF
		}
		b.left = size
	}
	if err := r.readSome(); err != nil {
		return 0, truncated(err)
	}
	n := copy(p[:min(int64(len(p)), b.left)], r.buf[r.r:r.w])
	r.r += n
	b.left -= int64(n)
	return n, nil
}

func (b *ChunkedBody) readTrailers() error {
	r := b.R
	for {
		line, err := r.line()
		if err != nil {
			return err
		}
		r.r += len(line)
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			return nil
		}
		name, value, ok := bytes.Cut(content, []byte{':'})
		if !ok || len(name) == 0 {
			return malformed("trailer line %q", trunc(line))
		}
		for _, c := range name {
			if !isTokenChar(c) {
				return malformed("trailer field name %q", trunc(name))
			}
		}
		if b.Trailer != nil {
			b.Trailer(name, bytes.TrimSpace(value))
		}
	}
}
