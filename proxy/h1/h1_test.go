package h1

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/l5d-go/l5d/proxy/internal/benchcpu"
)

func reader(s string) *Reader { return NewReader(iotest.OneByteReader(strings.NewReader(s))) }

func TestReadRequestHead(t *testing.T) {
	r := reader("\r\nPOST /a?b=1 HTTP/1.1\r\nHost: web.ns.svc.cluster.local\r\nConnection: keep-alive, X-Hop\r\n" +
		"X-Hop: 1\r\nContent-Length: 5\r\nL5d-Dst-Override: other:80\r\n\r\nhello")
	var h Head
	if err := r.ReadRequest(&h); err != nil {
		t.Fatal(err)
	}
	if string(h.Method) != "POST" || string(h.Target) != "/a?b=1" || h.Minor != 1 {
		t.Fatalf("request line = %q %q 1.%d", h.Method, h.Target, h.Minor)
	}
	if string(h.Host) != "web.ns.svc.cluster.local" || h.ContentLength != 5 || h.Chunked || h.Close || h.Unusual {
		t.Fatalf("head = %+v", h)
	}
	if got := string(h.Get("l5d-dst-override")); got != "other:80" {
		t.Fatalf("Get = %q", got)
	}
	for name, want := range map[string]bool{"X-Hop": true, "connection": true, "Keep-Alive": true, "Host": false, "Content-Length": false} {
		if got := h.IsHopByHop([]byte(name)); got != want {
			t.Errorf("IsHopByHop(%s) = %v, want %v", name, got, want)
		}
	}
	r.Consume(&h)
	var body bytes.Buffer
	w := NewWriter(&body)
	if err := CopyFixed(w, r, h.ContentLength); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if body.String() != "hello" {
		t.Fatalf("body = %q", body.String())
	}
	if err := r.ReadRequest(&h); err != io.EOF {
		t.Fatalf("after the last request: %v, want io.EOF", err)
	}
}

func TestFramingFlags(t *testing.T) {
	for _, tc := range []struct {
		head                    string
		chunked, close, unusual bool
		upgrade, expect         bool
	}{
		{head: "GET / HTTP/1.0\r\n\r\n", close: true},
		{head: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{head: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", close: true},
		{head: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", chunked: true},
		{head: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", chunked: true, unusual: true},
		{head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"},
		{head: "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", upgrade: true},
		{head: "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", expect: true},
	} {
		var h Head
		if err := reader(tc.head).ReadRequest(&h); err != nil {
			t.Fatalf("%q: %v", tc.head, err)
		}
		if h.Chunked != tc.chunked || h.Close != tc.close || h.Unusual != tc.unusual || h.Upgrade != tc.upgrade || h.Expect != tc.expect {
			t.Errorf("%q: chunked=%v close=%v unusual=%v upgrade=%v expect=%v", tc.head, h.Chunked, h.Close, h.Unusual, h.Upgrade, h.Expect)
		}
	}
}

// TestMalformedHeads: the parser refuses what net/http refuses and what lets two
// parsers disagree on a message's fields or end (request smuggling).
func TestMalformedHeads(t *testing.T) {
	for _, head := range []string{
		"GET\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"G(T / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
		"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
		"GET / HTTP/1.1\r\n: x\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x",
		// Missing or several Host fields (routing would use one, the app another).
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		// Bare LF line endings, including a bare-LF empty line ending the fields
		// before the CRLF one.
		"GET / HTTP/1.1\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\nGET /smuggled HTTP/1.1\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\n\n",
		// Obsolete line folding.
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
		// Framing: differing Content-Length, Transfer-Encoding not ending with a
		// single chunked, Transfer-Encoding with Content-Length.
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000000\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n",
		// Request target.
		"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a% HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET a?b=c HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		var h Head
		err := reader(head).ReadRequest(&h)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err = %v, want ErrMalformed", head, err)
		}
	}
	var tooMany Head
	if err := reader("GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: 1\r\n", MaxFields) + "\r\n").ReadRequest(&tooMany); !errors.Is(err, ErrTooManyFields) || !errors.Is(err, ErrHeadTooLarge) {
		t.Errorf("%d fields: %v, want ErrTooManyFields", MaxFields+1, err)
	}
	if err := reader("GET / HTTP/1.1\r\nHost: a\r\nConnection: " + strings.Repeat("x,", 33) + "\r\n\r\n").ReadRequest(&tooMany); !errors.Is(err, ErrTooManyFields) {
		t.Errorf("33 Connection options: %v, want ErrTooManyFields", err)
	}
	if err := reader("GET /%41?q=%zz HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: 1\r\n", MaxFields-1) + "\r\n").ReadRequest(&tooMany); err != nil {
		t.Errorf("%d fields, escapes only checked in the path: %v", MaxFields, err)
	}
	var h Head
	big := "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHeadBytes) + "\r\n\r\n"
	if err := NewReader(strings.NewReader(big)).ReadRequest(&h); !errors.Is(err, ErrHeadTooLarge) {
		t.Fatalf("oversized head: %v", err)
	}
}

func TestReadResponseHead(t *testing.T) {
	var h Head
	r := reader("HTTP/1.1 204 No Content\r\nServer: x\r\n\r\nHTTP/1.1 200\r\nTransfer-Encoding: chunked\r\n\r\n")
	if err := r.ReadResponse(&h); err != nil {
		t.Fatal(err)
	}
	if h.Status != 204 || string(h.Reason) != "No Content" || !h.Bodyless(nil) {
		t.Fatalf("first response: %d %q bodyless=%v", h.Status, h.Reason, h.Bodyless(nil))
	}
	r.Consume(&h)
	if err := r.ReadResponse(&h); err != nil {
		t.Fatal(err)
	}
	if h.Status != 200 || !h.Chunked || h.Bodyless(nil) || !h.Bodyless([]byte("HEAD")) {
		t.Fatalf("second response: %+v", h)
	}
	for _, bad := range []string{"HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n", "HTTP/3 200 OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n",
		"HTTP/1.1 200 O\rK\r\n\r\n", "HTTP/1.1 200 OK\nX: 1\r\n\r\n", "HTTP/1.1 200 OK\r\nX: 1\r\n y\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"} {
		if err := reader(bad).ReadResponse(&h); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestCopyChunkedVerbatim(t *testing.T) {
	body := "5;ext=1\r\nhello\r\n1A\r\n" + strings.Repeat("z", 26) + "\r\n0\r\nGrpc-Status: 0\r\n\r\nNEXT"
	r := reader(body)
	var out bytes.Buffer
	w := NewWriter(&out)
	if err := CopyChunked(w, r); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if want := strings.TrimSuffix(body, "NEXT"); out.String() != want {
		t.Fatalf("relayed %q, want %q", out.String(), want)
	}
	if string(r.Buffered()) != "NEXT" && len(r.Buffered()) != 0 {
		t.Fatalf("consumed past the body: %q left", r.Buffered())
	}
	for _, bad := range []string{"zz\r\n", "5\r\nhelloXX\r\n0\r\n\r\n", "5\r\nhel", "ffffffffffffffff\r\n"} {
		w := NewWriter(io.Discard)
		if err := CopyChunked(w, reader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestCopyFixedTruncated(t *testing.T) {
	if err := CopyFixed(NewWriter(io.Discard), reader("abc"), 5); !errors.Is(err, ErrBodyTruncated) {
		t.Fatalf("err = %v", err)
	}
}

func TestWriterFlushedBeforeBlockingRead(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	r := NewReader(strings.NewReader("x"))
	r.FlushBefore(w, nil)
	w.WriteString("pending")
	if err := r.readSome(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "pending" {
		t.Fatalf("output not flushed before reading: %q", out.String())
	}
}

// TestLargeReadsGoStraightToTheCaller: a body read in units of at least a buffer's size
// returns what the head's read had buffered first, then reads from the connection into
// the caller's slice in the caller's units (not a buffer's), flushing the writers first;
// the bytes come out in order.
func TestLargeReadsGoStraightToTheCaller(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nContent-Length: 40000\r\n\r\n"
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 40000/36+1)[:40000]
	src := &countingReader{r: strings.NewReader(head + string(body))}
	r := NewReader(src)
	var out bytes.Buffer
	w := NewWriter(&out)
	r.FlushBefore(w, nil)
	var h Head
	if err := r.ReadResponse(&h); err != nil {
		t.Fatal(err)
	}
	r.Consume(&h)
	buffered := len(r.Buffered())
	reads := src.reads
	var got []byte
	p := make([]byte, 32<<10)
	w.WriteString("pending")
	for len(got) < len(body) {
		n, err := r.Read(p)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, not the body sent", len(got))
	}
	if out.String() != "pending" {
		t.Fatalf("output not flushed before reading: %q", out.String())
	}
	// The buffered part, then the rest in reads of up to 32 KiB.
	if want := reads + (len(body)-buffered+len(p)-1)/len(p); src.reads != want {
		t.Fatalf("%d reads from the connection for the body, want %d", src.reads-reads, want-reads)
	}
	if _, err := r.Read(p); err != io.EOF {
		t.Fatalf("read past the end: %v, want io.EOF", err)
	}
}

// countingReader counts the reads made from r.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// FuzzReadRequest feeds arbitrary bytes to the request parser and body framing: they must
// never panic and never report a head larger than the input.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	f.Add([]byte("POST /x HTTP/1.0\r\nContent-Length: 2\r\n\r\nab"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		var h Head
		for range 4 {
			if err := r.ReadRequest(&h); err != nil {
				return
			}
			if h.size > len(data) {
				t.Fatalf("head size %d > input %d", h.size, len(data))
			}
			r.Consume(&h)
			var err error
			switch {
			case h.Chunked:
				err = CopyChunked(NewWriter(io.Discard), r)
			case h.ContentLength > 0:
				err = CopyFixed(NewWriter(io.Discard), r, h.ContentLength)
			}
			if err != nil {
				return
			}
		}
	})
}

// FuzzReadResponse does the same for response heads.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 101 Switching\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Head
		if err := NewReader(bytes.NewReader(data)).ReadResponse(&h); err == nil && (h.Status < 100 || h.Status > 999) {
			t.Fatalf("status %d accepted", h.Status)
		}
	})
}

func TestTrimOWS(t *testing.T) {
	for in, want := range map[string]string{"": "", " \t": "", "a": "a", " a ": "a", "\ta b\t ": "a b", "a\r": "a\r", "\x0ba": "\x0ba"} {
		if got := string(trimOWS([]byte(in))); got != want {
			t.Errorf("trimOWS(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkReadRequest parses a typical request head (a browser's GET); compare builds by
// cpu-ns/op.
func BenchmarkReadRequest(b *testing.B) {
	const head = "GET /api/items?page=2 HTTP/1.1\r\nHost: web.ns.svc.cluster.local\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n" +
		"Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n" +
		"Connection: keep-alive\r\nCookie: session=abc123; theme=dark\r\nCache-Control: max-age=0\r\n\r\n"
	src := strings.NewReader(head)
	r := NewReader(src)
	var h Head
	b.ReportAllocs()
	defer benchcpu.Start(b)()
	for b.Loop() {
		src.Reset(head)
		r.Reset(src)
		if err := r.ReadRequest(&h); err != nil {
			b.Fatal(err)
		}
		r.Consume(&h)
	}
}
