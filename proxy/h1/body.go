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
		if string(crlf) != "\r\n" {
			return malformed("chunk data not followed by CRLF")
		}
		if _, err := w.Write(crlf); err != nil {
			return err
		}
		r.r += len(crlf)
	}
}

// copyTrailers relays trailer lines through the final empty line, checking each.
func (r *Reader) copyTrailers(w *Writer) error {
	for n := 0; ; n++ {
		line, err := r.line()
		if err != nil {
			return err
		}
		_, _, last, err := trailerLine(line, n)
		if err != nil {
			return err
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		r.r += len(line)
		if last {
			return nil
		}
	}
}

// trailerLine checks the n-th line of a trailer section (its CRLF included): a field
// as in a head, or the empty line that ends the section (last).
func trailerLine(line []byte, n int) (name, value []byte, last bool, err error) {
	content, ok := bytes.CutSuffix(line, crlf)
	if !ok || bytes.IndexByte(content, '\r') >= 0 {
		return nil, nil, false, malformed("trailer line %q does not end with CRLF", trunc(line))
	}
	if len(content) == 0 {
		return nil, nil, true, nil
	}
	if n >= MaxFields {
		return nil, nil, false, malformed("more than %d trailer fields", MaxFields)
	}
	name, value, ok = bytes.Cut(content, []byte{':'})
	if !ok || len(name) == 0 {
		return nil, nil, false, malformed("trailer line %q", trunc(line))
	}
	for _, c := range name {
		if !isTokenChar(c) {
			return nil, nil, false, malformed("trailer field name %q", trunc(name))
		}
	}
	value = trimOWS(value)
	for _, c := range value {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return nil, nil, false, malformed("trailer field %q has a control character in its value", trunc(name))
		}
	}
	return name, value, false, nil
}

var crlf = []byte("\r\n")

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
				putBuf(r.buf)
				r.buf, r.w, r.r = nb, r.w-r.r, 0
				continue
			}
			return nil, truncated(err)
		}
	}
}

// chunkSize parses a chunk-size line ("1a;ext=v\r\n"): hex digits (at most 15), then
// optional whitespace and chunk extensions, then CRLF. A bare LF, a CR or another
// control character anywhere else is refused, as net/http does since CVE-2025-22871:
// parsers that disagree on where a chunk line ends disagree on where the body ends.
func chunkSize(line []byte) (int64, error) {
	content, ok := bytes.CutSuffix(line, crlf)
	if !ok {
		return 0, malformed("chunk size line %q does not end with CRLF", trunc(line))
	}
	var n int64
	digits := 0
	for i, c := range content {
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
			if err := chunkExtensions(content[i:]); err != nil {
				return 0, err
			}
			return n, nil
		}
		if digits == 15 {
			return 0, malformed("chunk size too large")
		}
		n = n<<4 | int64(d)
		digits++
	}
	if digits == 0 {
		return 0, malformed("chunk size line %q", trunc(line))
	}
	return n, nil
}

// chunkExtensions checks what follows the size on a chunk line: whitespace, then
// nothing or ";" and extensions without control characters (tab aside).
func chunkExtensions(b []byte) error {
	b = bytes.TrimLeft(b, " \t")
	if len(b) == 0 {
		return nil
	}
	if b[0] != ';' {
		return malformed("chunk size line has %q after the size", trunc(b))
	}
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return malformed("chunk extension has a control character")
		}
	}
	return nil
}

func truncated(err error) error {
	if isEOFish(err) || err == io.ErrNoProgress {
		return ErrBodyTruncated
	}
	return err
}

// Read reads unconsumed bytes: those buffered first, then from the connection. It
// serves bodies the caller delimits itself (a known length, or the end of the
// connection). With nothing buffered, a p of at least a buffer's size is read into
// straight from the connection: a large body is read in the caller's units, without a
// copy.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.r == r.w && len(p) >= defaultBufSize {
		return r.readDirect(p)
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
			if string(crlf) != "\r\n" {
				return 0, malformed("chunk data not followed by CRLF")
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
	for n := 0; ; n++ {
		line, err := r.line()
		if err != nil {
			return err
		}
		name, value, last, err := trailerLine(line, n)
		if err != nil {
			return err
		}
		r.r += len(line)
		if last {
			return nil
		}
		if b.Trailer != nil {
			b.Trailer(name, value)
		}
	}
}
