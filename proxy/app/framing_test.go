package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// TestInboundRefusesLenientFraming: through a real proxy's inbound side, requests framed
// so that a lenient application would read another request in them are refused (400),
// and a response a lenient application framed badly becomes a 502 (issue 27 finding 9).
func TestInboundRefusesLenientFraming(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	appAddr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, r.Host+r.URL.Path)
		mu.Unlock()
		fmt.Fprint(w, "app")
	}))
	p := startProxy(t, netip.AddrPort{}, appAddr, nil, nil)
	waitReady(t, p)
	in, _, _ := p.Addrs()
	for _, c := range []struct {
		name, raw string
		want      int
	}{
		{"bare LF chunk lines", "POST /a HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\nGET /smuggled HTTP/1.1\r\nHost: web\r\n\r\n", 400},
		{"CR in chunk extension", "POST /a HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\r\nhello\r\n0\r\n\r\n", 400},
		{"two Host fields", "GET /smuggled HTTP/1.1\r\nHost: web\r\nHost: admin\r\n\r\n", 400},
		{"TE not ending with chunked", "POST /smuggled HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", http.StatusNotImplemented}, // as net/http
		{"conflicting Content-Length", "POST /smuggled HTTP/1.1\r\nHost: web\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
	} {
		if got := rawRequest(t, in, c.raw); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	mu.Lock()
	for _, s := range seen {
		if s == "web/smuggled" || s == "admin/smuggled" {
			t.Errorf("the application got %s", s)
		}
	}
	mu.Unlock()

	lenient, _ := net.Listen("tcp", "127.0.0.1:0")
	t.Cleanup(func() { lenient.Close() })
	go func() {
		for {
			c, err := lenient.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					io.WriteString(c, "HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n")
				}
			}()
		}
	}()
	lp := startProxy(t, netip.AddrPort{}, lenient.Addr().(*net.TCPAddr).AddrPort(), nil, nil)
	waitReady(t, lp)
	lin, _, _ := lp.Addrs()
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		if got := rawRequest(t, lin, "GET / "+proto+"\r\nHost: web\r\n\r\n"); got != http.StatusBadGateway {
			t.Errorf("%s: bare CR in the app's reason phrase: %d, want 502", proto, got)
		}
	}
}

// TestInboundHeadBoundOnEveryPath: a request head over h1.MaxHeadBytes is refused with 431
// for HTTP/1.1 and HTTP/1.0 alike (the general HTTP/1 server, which takes connections the
// fast path hands over, has the same bound).
func TestInboundHeadBoundOnEveryPath(t *testing.T) {
	appAddr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "app")
	}))
	p := startProxy(t, netip.AddrPort{}, appAddr, nil, nil)
	waitReady(t, p)
	in, _, _ := p.Addrs()
	big := "X-Big: " + strings.Repeat("a", 200<<10) + "\r\n"
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		if got := rawRequest(t, in, "GET / "+proto+"\r\nHost: web\r\n\r\n"); got != http.StatusOK {
			t.Fatalf("%s: a normal request: %d, want 200", proto, got)
		}
		if got := rawRequest(t, in, "GET / "+proto+"\r\nHost: web\r\n"+big+"\r\n"); got != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: a 200 KiB head: %d, want 431", proto, got)
		}
	}
}
