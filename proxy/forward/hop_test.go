package forward

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// headServer is a loopback app that reads each request head (without parsing it beyond
// the lines), records it on heads when set, and answers 200 with no body.
func headServer(t testing.TB, heads chan<- string, opts ...func(*Handler)) (addr string, target func() *fastProxy) {
	app, _ := rawServer(t, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 128<<10)
		for {
			var head strings.Builder
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				head.Write(line)
				if len(line) <= 2 {
					break
				}
			}
			if heads != nil {
				heads <- head.String()
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"); err != nil {
				return
			}
		}
	})
	p := startFastProxy(t, app, opts...)
	return p.addr, func() *fastProxy { return p }
}

// hostileConnectionHead is the head of issue 27 finding 4: about 15,000 Connection
// options and 6,800 fields in 64 KiB.
func hostileConnectionHead() string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: app\r\nConnection: ")
	b.WriteString(strings.Repeat("x,", 15000))
	b.WriteString("\r\n")
	for b.Len() < 64<<10-64 {
		b.WriteString("y:1\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// hostileWithinLimits is the worst head the fast path still forwards: the most fields,
// the most Connection options, long values.
func hostileWithinLimits() string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: app\r\nConnection: ")
	for i := range 32 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("opt-" + strings.Repeat("o", i))
	}
	b.WriteString("\r\n")
	for i := 0; i < 97; i++ {
		b.WriteString("Field-" + strings.Repeat("f", i%30) + ": ")
		b.WriteString(strings.Repeat("v", 560))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// largeBenignHead is about as large as hostileWithinLimits, without Connection options:
// what such a head costs anyway for its size.
func largeBenignHead() string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: app\r\n")
	for i := 0; i < 98; i++ {
		b.WriteString("Field-" + strings.Repeat("f", i%30) + ": ")
		b.WriteString(strings.Repeat("v", 560))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

const normalHead = "GET /api/items/42 HTTP/1.1\r\nHost: app\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n"

// TestFastPathHopByHopFields: fields named in Connection (and the standard hop-by-hop
// ones) are not forwarded, the others are; a head with too many fields or Connection
// options is refused with 431 without reaching the app.
func TestFastPathHopByHopFields(t *testing.T) {
	heads := make(chan string, 10)
	addr, proxy := headServer(t, heads)
	c, br := dial(t, addr)
	resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: app\r\nConnection: X-A, x-b\r\nConnection: X-C\r\nX-A: 1\r\nX-B: 2\r\nx-c: 3\r\nX-D: 4\r\nKeep-Alive: 5\r\nTE: gzip\r\nUpgrade-Insecure-Requests: 1\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := <-heads
	for _, f := range []string{"X-A", "X-B", "x-c", "Keep-Alive", "TE", "Connection"} {
		if strings.Contains(got, "\r\n"+f+":") {
			t.Errorf("hop-by-hop field %s forwarded:\n%s", f, got)
		}
	}
	for _, f := range []string{"X-D: 4", "Upgrade-Insecure-Requests: 1", "Host: app"} {
		if !strings.Contains(got, "\r\n"+f+"\r\n") {
			t.Errorf("field %q not forwarded:\n%s", f, got)
		}
	}

	c, br = dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: app\r\n"+strings.Repeat("X-Many: 1\r\n", 100)+"\r\n")
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("101 fields: %v %v, want 431", resp, err)
	}

	c, br = dial(t, addr)
	io.WriteString(c, hostileConnectionHead())
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("15,000 Connection options: %v %v, want 431", resp, err)
	}
	select {
	case got := <-heads:
		t.Errorf("a refused head was forwarded (%d bytes)", len(got))
	case got := <-proxy().handoffs:
		t.Errorf("a refused head was handed off (%d bytes)", len(got))
	default:
	}
}

// BenchmarkFastPathHead compares the cost of a request through the fast path (new
// client connection, forwarded to a loopback app; heads the fast path leaves to the
// general handler are served by it, as in the proxy) with a normal head and hostile
// ones: the hostile heads must cost a small multiple of a normal one of the same size,
// not seconds.
func BenchmarkFastPathHead(b *testing.B) {
	for _, c := range []struct{ name, head string }{
		{"normal", normalHead},
		{"hostile-connection", hostileConnectionHead()},
		{"large-benign", largeBenignHead()},
		{"hostile-within-limits", hostileWithinLimits()},
	} {
		b.Run(c.name, func(b *testing.B) {
			addr := startProxyWithGeneral(b)
			b.SetBytes(int64(len(c.head)))
			for b.Loop() {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				io.WriteString(conn, c.head)
				conn.(*net.TCPConn).CloseWrite()
				// 200 from the app, or 431 for too many Connection options.
				if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
					b.Fatalf("response: %v", err)
				}
				conn.Close()
			}
		})
	}
}

// startProxyWithGeneral serves the fast path on loopback, forwarding to a headServer app,
// with the connections it hands off served by the general handler (net/http), as
// accept.Server does; it returns the proxy's address.
func startProxyWithGeneral(b *testing.B) string {
	_, proxy := headServer(b, nil)
	app := proxy().target
	h := proxy().h
	gl := newOneConnListener()
	general := &http.Server{Handler: h}
	go general.Serve(gl)
	b.Cleanup(func() { general.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go h.ServeHTTP1(ctx, c, &ConnInfo{Direction: "outbound", OrigDst: app}, func(pending []byte) {
				gl.ch <- &prefixConn{Conn: c, pending: pending}
			})
		}
	}()
	return ln.Addr().String()
}

// prefixConn reads pending before reading from its connection.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
