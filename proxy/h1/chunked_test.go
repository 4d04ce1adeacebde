package h1

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestChunkedBodyDecodesDataAndTrailers(t *testing.T) {
	in := "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\nX-Other:  v \r\n\r\nNEXT"
	r := NewReader(strings.NewReader(in))
	var trailers []string
	b := &ChunkedBody{R: r, Trailer: func(name, value []byte) { trailers = append(trailers, string(name)+"="+string(value)) }}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("body %q, %v", got, err)
	}
	if strings.Join(trailers, ",") != "X-Sum=42,X-Other=v" {
		t.Fatalf("trailers %q", trailers)
	}
	if rest := string(r.Buffered()); rest != "NEXT" {
		t.Fatalf("bytes after the body %q, want the next message left unread", rest)
	}
}

// lenientChunked are chunked bodies that lenient parsers read differently (request
// smuggling): the codec refuses them, whether it relays or decodes them.
var lenientChunked = []string{
	"5\nhello\n0\n\n",                                                // bare LF lines
	"5\nhello\r\n0\r\n\r\n",                                          // bare LF after the size
	"5\r\nhello\n0\r\n\r\n",                                          // bare LF after the data
	"5\r\nhello\r\n0\r\n\n",                                          // bare LF ending the trailers
	"5\r\nhelloXX0\r\n\r\n",                                          // data longer than its size
	"5;a=\"b\rc\"\r\nhello\r\n0\r\n\r\n",                             // CR in an extension
	"5;a\x00\r\nhello\r\n0\r\n\r\n",                                  // NUL in an extension
	"5 x\r\nhello\r\n0\r\n\r\n",                                      // junk after the size
	"5\r\r\nhello\r\n0\r\n\r\n",                                      // CR CR LF
	"5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n",                             // bare CR in a trailer
	"5\r\nhello\r\n0\r\nX: a\nY: b\r\n\r\n",                          // bare LF in the trailers
	"5\r\nhello\r\n0\r\nX : a\r\n\r\n",                               // trailer name not a token
	"5\r\nhello\r\n0\r\n X: a\r\n\r\n",                               // folded trailer
	"1000000000000000\r\n",                                           // size overflow
	"-5\r\nhello\r\n0\r\n\r\n",                                       // negative size
	";x\r\n0\r\n\r\n",                                                // no size
	"5\r\nhello\r\n0\r\n" + strings.Repeat("X: 1\r\n", 101) + "\r\n", // too many trailers
}

// TestCopyChunkedRejectsLenientFraming: relaying refuses the same bodies.
func TestCopyChunkedRejectsLenientFraming(t *testing.T) {
	for _, in := range lenientChunked {
		var out bytes.Buffer
		err := CopyChunked(NewWriter(&out), NewReader(strings.NewReader(in)))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: got %v, want ErrMalformed", in, err)
		}
	}
	// Well-formed bodies still pass: extensions, whitespace before them, trailers.
	for _, in := range []string{"5 ;a=b\r\nhello\r\n0\r\n\r\n", "5\t\r\nhello\r\n0;x=\"y z\"\r\nX: 1\r\n\r\n"} {
		var out bytes.Buffer
		w := NewWriter(&out)
		if err := CopyChunked(w, NewReader(strings.NewReader(in))); err != nil {
			t.Errorf("%q: %v", in, err)
		}
		w.Flush()
		if out.String() != in {
			t.Errorf("%q relayed as %q", in, out.String())
		}
	}
}

func TestChunkedBodyRejectsBadFraming(t *testing.T) {
	for _, in := range []string{
		"zz\r\nhello\r\n0\r\n\r\n",       // size not hex
		"3\r\nhello\r\n0\r\n\r\n",        // data longer than its size
		"5\r\nhello\r\n0\r\nbad\r\n\r\n", // trailer without a colon
	} {
		_, err := io.ReadAll(&ChunkedBody{R: NewReader(strings.NewReader(in))})
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: got %v, want ErrMalformed", in, err)
		}
	}
	for _, in := range lenientChunked {
		_, err := io.ReadAll(&ChunkedBody{R: NewReader(strings.NewReader(in))})
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: got %v, want ErrMalformed", in, err)
		}
	}
	_, err := io.ReadAll(&ChunkedBody{R: NewReader(strings.NewReader("5\r\nhel"))})
	if !errors.Is(err, ErrBodyTruncated) {
		t.Errorf("truncated chunk: got %v, want ErrBodyTruncated", err)
	}
}

// FuzzChunkedBody checks that decoding arbitrary input never panics, and that what
// decodes cleanly re-encodes to a body that decodes to the same bytes.
func FuzzChunkedBody(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("1;a=b\r\nx\r\n0\r\nT: v\r\n\r\n"))
	f.Add([]byte("fffffffffffffff\r\n"))
	f.Add([]byte("0\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := io.ReadAll(&ChunkedBody{R: NewReader(bytes.NewReader(in)), Trailer: func(name, value []byte) {}})
		if err != nil {
			return
		}
		if len(got) > len(in) {
			t.Fatalf("decoded %d bytes from %d", len(got), len(in))
		}
		var enc bytes.Buffer
		if len(got) > 0 {
			enc.WriteString(hex(len(got)) + "\r\n")
			enc.Write(got)
			enc.WriteString("\r\n")
		}
		enc.WriteString("0\r\n\r\n")
		again, err := io.ReadAll(&ChunkedBody{R: NewReader(&enc)})
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("re-encoded body decodes to %q, %v; want %q", again, err, got)
		}
	})
}

func hex(n int) string {
	const digits = "0123456789abcdef"
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n >>= 4 {
		b = append([]byte{digits[n&15]}, b...)
	}
	return string(b)
}
