package forward

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFastPathRefusesLenientFraming: requests and responses framed in ways lenient
// parsers read differently (issue 27 finding 9) are refused through the fast path, so a
// lenient application cannot be smuggled a request: a malformed request body is a 400, a
// malformed request head goes to the general handler whole (it answers 400 or reads the
// head as net/http does), a malformed response head is a 502 and a malformed response
// body ends the client connection.
func TestFastPathRefusesLenientFraming(t *testing.T) {
	heads := make(chan string, 10)
	addr, proxy := headServer(t, heads)

	t.Run("bare LF chunk lines", func(t *testing.T) {
		c, br := dial(t, addr)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\nGET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusBadRequest || !resp.Close {
			t.Fatalf("got %v %v, want 400 and close", resp, err)
		}
	})
	t.Run("CR in chunk extension", func(t *testing.T) {
		c, br := dial(t, addr)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"\r\"\r\nhello\r\n0\r\n\r\n")
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("got %v %v, want 400", resp, err)
		}
	})
	for _, c := range []struct{ name, raw string }{
		{"two Host fields", "GET / HTTP/1.1\r\nHost: app\r\nHost: admin\r\n\r\n"},
		{"bare LF empty line", "GET / HTTP/1.1\r\nHost: app\r\n\nGET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: app\r\nX: a\r\n b\r\n\r\n"},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"CL conflict", "POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, _ := dial(t, addr)
			io.WriteString(conn, c.raw)
			select {
			case got := <-proxy().handoffs:
				if string(got) != c.raw {
					t.Fatalf("handed off %q, want everything sent %q", got, c.raw)
				}
			case got := <-heads:
				t.Fatalf("forwarded %q", got)
			case <-time.After(30 * time.Second):
				t.Fatal("neither forwarded nor handed off")
			}
		})
	}
	if len(heads) != 0 {
		t.Fatalf("the app got %q", <-heads)
	}

	for _, c := range []struct{ name, resp string }{
		{"bare CR in reason", "HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n"},
		{"bare LF in head", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"},
		{"CL conflict", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 2\r\n\r\nhi"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"},
	} {
		t.Run("response "+c.name, func(t *testing.T) {
			app, _ := rawServer(t, func(conn net.Conn) {
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
					io.WriteString(conn, c.resp)
				}
			})
			p := startFastProxy(t, app)
			conn, br := dial(t, p.addr)
			resp, _ := roundTrip(t, conn, br, "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("got %d, want 502", resp.StatusCode)
			}
		})
	}
	for _, c := range []struct{ name, resp string }{
		{"bare LF chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n"},
		{"bare CR in trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n"},
	} {
		t.Run("response "+c.name, func(t *testing.T) {
			app, _ := rawServer(t, func(conn net.Conn) {
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
					io.WriteString(conn, c.resp)
					io.Copy(io.Discard, conn)
				}
			})
			p := startFastProxy(t, app)
			conn, br := dial(t, p.addr)
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
			all, _ := io.ReadAll(br)
			if strings.Contains(string(all), "\r\n0\r\n") && strings.HasSuffix(string(all), "\r\n\r\n") {
				t.Fatalf("the malformed body was relayed whole: %q", all)
			}
		})
	}
}
