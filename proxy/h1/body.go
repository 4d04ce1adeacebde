package h1

import (
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
