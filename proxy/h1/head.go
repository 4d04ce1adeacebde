package h1

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
)

// Field is one header field; Name and Value point into the reader's buffer.
type Field struct {
	Name, Value []byte
}

// Head is a parsed request or response head. Its byte slices point into the Reader's
// buffer and stay valid until the head is consumed with Reader.Consume.
type Head struct {
	// Request line (requests only).
	Method, Target []byte
	// Status line (responses only).
	Status int
	Reason []byte
	// Minor is the HTTP/1 minor version (0 or 1).
	Minor int
	// Fields are the header fields in order, hop-by-hop ones included.
	Fields []Field
	// Host is the Host field's value (requests).
	Host []byte
	// ContentLength is the Content-Length value, or -1 when absent.
	ContentLength int64
	// Chunked is true when the body uses chunked transfer coding.
	Chunked bool
	// Close is true when the sender asked for the connection to close after this message
	// (Connection: close, or HTTP/1.0 without keep-alive).
	Close bool
	// Upgrade is true when the message carries Connection: upgrade or an Upgrade field.
	Upgrade bool
	// Expect is true when a request carries an Expect field (such as 100-continue).
	Expect bool
	// Unusual is true when the message uses framing the fast path leaves to a general
	// HTTP implementation: transfer codings before chunked ("gzip, chunked").
	Unusual bool
	// connTokens are the options of the Connection fields (at most
	// maxConnectionTokens), parsed once per head for IsHopByHop.
	connTokens [][]byte
	size       int
}

// MaxFields bounds the number of header fields of a message head, as hyper (the HTTP
// implementation of Linkerd's proxy) does by default. A head with more is refused with
// ErrTooManyFields.
const MaxFields = 100

// maxConnectionTokens bounds the options listed in the Connection fields of a head; a
// head with more is refused with ErrTooManyFields. Real clients send one or two.
const maxConnectionTokens = 32

// ErrTooManyFields is returned for a head with more than MaxFields fields or more than
// 32 Connection options; it is an ErrHeadTooLarge.
var ErrTooManyFields = fmt.Errorf("%w: too many header fields or Connection options", ErrHeadTooLarge)

// ErrMalformed wraps every parse failure of a message head.
var ErrMalformed = errors.New("h1: malformed message head")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// ReadRequest reads and parses a request head into h, reusing h's storage. It returns
// io.EOF when the connection closed cleanly before a new request began.
func (r *Reader) ReadRequest(h *Head) error {
	if err := r.readHead(h); err != nil {
		return err
	}
	return parseRequest(r.buf[r.r:r.r+h.size], h)
}

// ReadResponse reads and parses a response head into h, reusing h's storage.
func (r *Reader) ReadResponse(h *Head) error {
	if err := r.readHead(h); err != nil {
		return err
	}
	return parseResponse(r.buf[r.r:r.r+h.size], h)
}

// Consume discards the head h from the buffer once the caller is done with its slices.
func (r *Reader) Consume(h *Head) { r.r += h.size; h.size = 0 }

// readHead buffers a complete head (through the empty line) and records its size.
func (r *Reader) readHead(h *Head) error {
	scanned := 0
	for {
		b := r.buf[r.r:r.w]
		// Tolerate empty lines before a request line, as RFC 9112 allows.
		for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') && scanned == 0 {
			r.r++
			b = b[1:]
		}
		if n := headEnd(b, max(scanned-3, 0)); n > 0 {
			h.size = n
			return nil
		}
		scanned = len(b)
		var err error
		if r.r == r.w && r.idle != nil {
			err = r.fillIdle() // called directly: one frame less while a connection idles
		} else {
			err = r.fill(MaxHeadBytes)
		}
		if err != nil {
			if err == ErrHeadTooLarge {
				return err
			}
			if len(r.buf[r.r:r.w]) > 0 && isEOFish(err) {
				return malformed("connection closed inside a message head")
			}
			return err
		}
	}
}

// headEnd returns the length of the head at the start of b, through its empty line, or
// 0 when b does not hold all of it yet; from is where to start looking. Lines end with
// CRLF; a bare LF also ends one here, so that a head using them ends where a lenient
// parser would end it (and is then refused) instead of running on into the next message.
func headEnd(b []byte, from int) int {
	for i := from; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

func parseRequest(b []byte, h *Head) error {
	resetHead(h)
	line, rest, ok := cutLine(b)
	if !ok {
		return errBareLF
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return malformed("request line %q has no method", trunc(line))
	}
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp2 <= sp1+1 {
		return malformed("request line %q has no target", trunc(line))
	}
	h.Method, h.Target = line[:sp1], line[sp1+1:sp2]
	for _, c := range h.Method {
		if !isTokenChar(c) {
			return malformed("method %q is not a token", trunc(h.Method))
		}
	}
	inPath := true
	for i, c := range h.Target {
		switch {
		case c <= ' ' || c == 0x7f:
			return malformed("request target contains a control character or space")
		case c == '?':
			inPath = false
		case c == '%' && inPath:
			// As net/http, refuse a path with an invalid percent-encoding.
			if i+2 >= len(h.Target) || !isHex(h.Target[i+1]) || !isHex(h.Target[i+2]) {
				return malformed("request target has an invalid percent-encoding")
			}
		}
	}
	if h.Target[0] != '/' && string(h.Target) != "*" && string(h.Method) != "CONNECT" {
		// Absolute form (RFC 9112 section 3.2.2), rare: check it as net/http does.
		if _, err := url.ParseRequestURI(string(h.Target)); err != nil {
			return malformed("request target %q", trunc(h.Target))
		}
	}
	minor, err := parseVersion(line[sp2+1:])
	if err != nil {
		return err
	}
	h.Minor = minor
	if err := parseFields(rest, h); err != nil {
		return err
	}
	if h.Host == nil && minor == 1 {
		return malformed("HTTP/1.1 request without Host")
	}
	return nil
}

func parseResponse(b []byte, h *Head) error {
	resetHead(h)
	line, rest, ok := cutLine(b)
	if !ok {
		return errBareLF
	}
	if len(line) < 12 || line[8] != ' ' {
		return malformed("status line %q", trunc(line))
	}
	minor, err := parseVersion(line[:8])
	if err != nil {
		return err
	}
	h.Minor = minor
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return malformed("status code in %q", trunc(line))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return malformed("status code %d", code)
	}
	h.Status = code
	if len(line) > 12 {
		if line[12] != ' ' {
			return malformed("status line %q", trunc(line))
		}
		h.Reason = line[13:]
		for _, c := range h.Reason {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return malformed("status line has a control character in its reason")
			}
		}
	}
	return parseFields(rest, h)
}

func resetHead(h *Head) {
	size := h.size
	fields, conn := h.Fields[:0], h.connTokens[:0]
	*h = Head{Fields: fields, connTokens: conn, ContentLength: -1, size: size}
}

func parseVersion(v []byte) (int, error) {
	if len(v) != 8 || string(v[:7]) != "HTTP/1." || (v[7] != '0' && v[7] != '1') {
		return 0, malformed("unsupported protocol version %q", trunc(v))
	}
	return int(v[7] - '0'), nil
}

// parseFields parses header lines (ending with the empty line) into h. It refuses what
// would let two parsers disagree on where a message ends or which fields it has (RFC
// 9112 sections 2.2, 5, 6): bare LF line endings, obsolete line folding, field names
// that are not tokens, control characters in values, Content-Length fields that differ
// or are not numbers, Transfer-Encoding that does not end with chunked (requests) or
// applies chunked twice, Transfer-Encoding with Content-Length, several Host fields.
func parseFields(b []byte, h *Head) error {
	keepAlive, hosts, teFields := false, 0, 0
	for len(b) > 0 {
		line, rest, ok := cutLine(b)
		if !ok {
			return errBareLF
		}
		b = rest
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return malformed("obsolete line folding")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return malformed("header line %q has no field name", trunc(line))
		}
		name := line[:colon]
		for _, c := range name {
			if !isTokenChar(c) {
				return malformed("field name %q is not a token", trunc(name))
			}
		}
		value := trimOWS(line[colon+1:])
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return malformed("field %q has a control character in its value", trunc(name))
			}
		}
		if len(h.Fields) == MaxFields {
			return ErrTooManyFields
		}
		h.Fields = append(h.Fields, Field{Name: name, Value: value})
		switch len(name) {
		case 4:
			if EqualFold(name, "host") {
				if hosts++; hosts > 1 && h.Method != nil {
					return malformed("several Host fields")
				}
				h.Host = value
			}
		case 6:
			if EqualFold(name, "expect") {
				h.Expect = true
			}
		case 7:
			if EqualFold(name, "upgrade") {
				h.Upgrade = true
			}
		case 10:
			if EqualFold(name, "connection") {
				for tok := range bytes.SplitSeq(value, []byte{','}) {
					tok = trimOWS(tok)
					if len(tok) == 0 {
						continue
					}
					if len(h.connTokens) == maxConnectionTokens {
						return ErrTooManyFields
					}
					h.connTokens = append(h.connTokens, tok)
					switch {
					case EqualFold(tok, "close"):
						h.Close = true
					case EqualFold(tok, "keep-alive"):
						keepAlive = true
					case EqualFold(tok, "upgrade"):
						h.Upgrade = true
					}
				}
			}
		case 14:
			if EqualFold(name, "content-length") {
				n, ok := parseDecimal(value)
				if !ok {
					return malformed("Content-Length %q is not a number", trunc(value))
				}
				if h.ContentLength >= 0 && h.ContentLength != n {
					return malformed("Content-Length fields differ")
				}
				h.ContentLength = n
			}
		case 17:
			if EqualFold(name, "transfer-encoding") {
				if teFields++; teFields > 1 || h.Chunked {
					return malformed("several Transfer-Encoding fields")
				}
				if err := parseTransferEncoding(value, h); err != nil {
					return err
				}
			}
		}
	}
	if teFields > 0 && h.ContentLength >= 0 {
		return malformed("both Transfer-Encoding and Content-Length")
	}
	if h.Minor == 0 && !keepAlive {
		h.Close = true
	}
	return nil
}

// parseTransferEncoding reads a Transfer-Encoding value: chunked, possibly after other
// codings (then the message is Unusual). chunked must come last and only once; a
// request whose last coding is not chunked has no way to end its body.
func parseTransferEncoding(value []byte, h *Head) error {
	n := 0
	for c := range bytes.SplitSeq(value, []byte{','}) {
		c = trimOWS(c)
		if len(c) == 0 {
			continue
		}
		if h.Chunked {
			return malformed("Transfer-Encoding %q has codings after chunked", trunc(value))
		}
		for _, ch := range c {
			if !isTokenChar(ch) && ch != ';' && ch != '=' && ch != ' ' && ch != '\t' && ch != '"' {
				return malformed("Transfer-Encoding %q", trunc(value))
			}
		}
		if EqualFold(c, "chunked") {
			h.Chunked = true
		}
		n++
	}
	if !h.Chunked {
		return malformed("Transfer-Encoding %q does not end with chunked", trunc(value))
	}
	if n > 1 {
		h.Unusual = true
	}
	return nil
}

var errBareLF = malformed("line ending with a bare LF")

// hopByHop are the fields that describe one connection and are never forwarded.
var hopByHop = []string{"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}

// IsHopByHop reports whether the field named name applies to this connection only: a
// standard hop-by-hop field or one listed in the Connection field. Its cost is bounded:
// the Connection options were parsed with the head, and there are few.
func (h *Head) IsHopByHop(name []byte) bool {
	for _, s := range hopByHop {
		if len(s) == len(name) && EqualFold(name, s) {
			return true
		}
	}
	for _, tok := range h.connTokens {
		if len(tok) == len(name) && bytes.EqualFold(tok, name) {
			return true
		}
	}
	return false
}

// Get returns the value of the first field named name (case-insensitive), or nil.
func (h *Head) Get(name string) []byte {
	for _, f := range h.Fields {
		if len(f.Name) == len(name) && EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return nil
}

// Bodyless reports whether a response to a request with method has no body whatever
// its fields say (HEAD requests, 1xx, 204 and 304 responses).
func (h *Head) Bodyless(method []byte) bool {
	return string(method) == "HEAD" || h.Status < 200 || h.Status == 204 || h.Status == 304
}

// cutLine returns the first line of b without its CRLF, and the rest; ok is false when
// the line ends with a bare LF (or does not end).
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i <= 0 || b[i-1] != '\r' {
		return nil, nil, false
	}
	return b[:i-1], b[i+1:], true
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// EqualFold reports whether b equals the lower-case ASCII string s, ignoring ASCII case
// (field names; no allocation).
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// trimOWS returns b without the spaces and tabs (optional whitespace, RFC 9110 section
// 5.6.3) at either end. Unlike bytes.Trim with a cutset, it builds nothing per call.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func isTokenChar(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func trunc(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
