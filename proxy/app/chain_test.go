package app

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proxy/config"
)

// echoApp answers with the request's method, path, protocol and body, and counts the
// connections it accepted.
type echoApp struct{ conns atomic.Int64 }

func (a *echoApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-App-Proto", r.Proto)
	if v := r.Header.Get("L5d-Orig-Proto"); v != "" {
		w.Header().Set("X-Saw-Orig-Proto", v)
	}
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
}

func startEcho(t *testing.T) (*echoApp, netip.AddrPort) {
	app := &echoApp{}
	addr, _ := serveHTTPWith(t, app, func(srv *http.Server) {
		srv.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				app.conns.Add(1)
			}
		}
	})
	return app, addr
}

func TestHTTP1KeepAliveThroughChain(t *testing.T) {
	app, appAddr := startEcho(t)
	ch := newChain(t, appAddr, nil)
	c := clientTo(ch.entry, false)
	for i := range 20 {
		resp, err := c.Post("http://web.example:8080/echo", "text/plain", strings.NewReader(fmt.Sprint("body-", i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprint("POST /echo body-", i); string(b) != want || resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, b, want)
		}
		if p := resp.Header.Get("X-App-Proto"); p != "HTTP/1.1" {
			t.Fatalf("app saw %s", p)
		}
	}
	// Sequential keep-alive requests reuse one connection on every hop.
	if n := app.conns.Load(); n != 1 {
		t.Errorf("app accepted %d connections for 20 sequential requests; want 1 (pooled)", n)
	}
	out := scrape(t, ch.out)
	in := scrape(t, ch.in)
	for _, want := range []string{
		`request_total{direction="outbound",authority="",target_addr="`,
		`response_total{direction="outbound",authority="",target_addr="`,
		`status_code="200",classification="success"} 20`,
		`tcp_open_total{direction="outbound",peer="src"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("outbound metrics lack %s\n%s", want, out)
		}
	}
	if !strings.Contains(in, `request_total{direction="inbound",authority="web.example:8080"`) {
		t.Errorf("inbound metrics lack the authority label\n%s", in)
	}
}

func TestChunkedBodiesBothWays(t *testing.T) {
	appAddr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if len(r.TransferEncoding) == 0 || r.TransferEncoding[0] != "chunked" {
			http.Error(w, "request was not chunked", 400)
			return
		}
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "part%d-", i)
			w.(http.Flusher).Flush()
		}
		w.Write(b)
	}))
	ch := newChain(t, appAddr, nil)
	c := clientTo(ch.entry, false)
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("chunk-a/"))
		pw.Write([]byte("chunk-b"))
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", "http://app.example/", pr)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if want := "part0-part1-part2-chunk-a/chunk-b"; string(b) != want {
		t.Fatalf("got %d %q, want %q", resp.StatusCode, b, want)
	}
	if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("response framing %v, want chunked", resp.TransferEncoding)
	}
}

func TestHTTP2PriorKnowledgeWithTrailers(t *testing.T) {
	appAddr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Resp-Trailer")
		w.Header().Set("X-App-Proto", r.Proto)
		fmt.Fprintf(w, "%s|%s", b, r.Trailer.Get("X-Req-Trailer"))
		w.Header().Set("X-Resp-Trailer", "bye")
	}))
	ch := newChain(t, appAddr, nil)
	c := clientTo(ch.entry, true)
	req, _ := http.NewRequest("POST", "http://grpc.example/x", io.NopCloser(strings.NewReader("hello")))
	req.Trailer = http.Header{"X-Req-Trailer": {"hi"}}
	req.ContentLength = -1
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello|hi" {
		t.Errorf("body %q, want hello|hi (request trailer must reach the app)", b)
	}
	if p := resp.Header.Get("X-App-Proto"); p != "HTTP/2.0" {
		t.Errorf("app saw %s, want HTTP/2.0", p)
	}
	if got := resp.Trailer.Get("X-Resp-Trailer"); got != "bye" {
		t.Errorf("response trailer %q, want bye", got)
	}
}

// upgradeApp switches a request with Upgrade: websocket to a protocol that echoes lines
// upper-cased, so a test sees both directions work.
func upgradeApp(t testing.TB) netip.AddrPort {
	t.Helper()
	appAddr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "no upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		// Echo lines, upper-cased, so the test sees both directions work.
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString(strings.ToUpper(line))
			brw.Flush()
		}
	}))
	return appAddr
}

func TestWebSocketUpgrade(t *testing.T) {
	ch := newChain(t, upgradeApp(t), nil)
	switchProtocols(t, ch.entry).Close()
}

// TestUpgradeAppSpeaksFirst: bytes the application sends in the same write as its 101
// reach the client after the switch; an upgrade the application refuses is an ordinary
// response on a connection that serves the next request.
func TestUpgradeAppSpeaksFirst(t *testing.T) {
	app, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "greeting" {
			http.Error(w, "no upgrade for "+r.Header.Get("Upgrade"), 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: greeting\r\nConnection: Upgrade\r\n\r\nwelcome\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("bye " + line)
		brw.Flush()
	}))
	ch := newChain(t, app, nil)
	conn, err := net.Dial("tcp", ch.entry.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	fmt.Fprint(conn, "GET /up HTTP/1.1\r\nHost: up.example\r\nConnection: Upgrade\r\nUpgrade: other\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.HasPrefix(string(body), "no upgrade for other") {
		t.Fatalf("refused upgrade: %d %q", resp.StatusCode, body)
	}
	fmt.Fprint(conn, "GET /up HTTP/1.1\r\nHost: up.example\r\nConnection: Upgrade\r\nUpgrade: greeting\r\n\r\n")
	if resp, err = http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "greeting" {
		t.Fatalf("upgrade on the same connection: %v %v", resp, err)
	}
	if got, err := br.ReadString('\n'); got != "welcome\n" {
		t.Fatalf("the application's first bytes: %q %v", got, err)
	}
	fmt.Fprint(conn, "see you\n")
	if got, err := br.ReadString('\n'); got != "bye see you\n" {
		t.Fatalf("after the switch: %q %v", got, err)
	}
}

// switchProtocols sends an upgrade request to addr and checks that the connection then
// echoes lines as upgradeApp does; it returns the connection, still open.
func switchProtocols(t *testing.T, addr netip.AddrPort) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: ws.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	for _, msg := range []string{"hello\n", "again\n"} {
		fmt.Fprint(conn, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != strings.ToUpper(msg) {
			t.Fatalf("echo of %q: %q %v", msg, got, err)
		}
	}
	return conn
}

func TestOpaqueServerSpeaksFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprint(c, "220 banner\r\n")
				io.Copy(c, c) // echo until the client half-closes
			}()
		}
	}()
	appAddr := ln.Addr().(*net.TCPAddr).AddrPort()
	// Both proxies treat the destination port as opaque: the inbound proxy the app's port,
	// the outbound proxy the port it forwards to (the inbound proxy's listener here).
	in := startProxy(t, netip.AddrPort{}, appAddr, map[string]string{
		config.EnvInboundDisableDetection: fmt.Sprint(appAddr.Port()),
	}, nil)
	inAddr, _, _ := in.Addrs()
	out := startProxy(t, inAddr, netip.AddrPort{}, map[string]string{
		config.EnvOutboundDisableDetection: fmt.Sprint(inAddr.Port()),
	}, nil)
	_, entry, _ := out.Addrs()
	conn, err := net.Dial("tcp", entry.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || line != "220 banner\r\n" {
		t.Fatalf("banner %q %v", line, err)
	}
	fmt.Fprint(conn, "HELO x\r\n")
	conn.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "HELO x\r\n" {
		t.Fatalf("echo after half-close: %q %v", rest, err)
	}
	want := `tcp_read_bytes_total{direction="inbound",peer="dst",target_addr="` + appAddr.String() + `",target_ip="127.0.0.1",tls="no_identity",no_tls_reason="no_tls_from_remote"} 20`
	eventually.True(t, "tcp metrics "+want, func() bool {
		return strings.Contains(scrape(t, in), want)
	})
}

func TestNonHTTPClientFirstIsOpaque(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	ch := newChain(t, ln.Addr().(*net.TCPAddr).AddrPort(), nil)
	conn, err := net.Dial("tcp", ch.entry.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := []byte("\x16\x03\x01 not http at all")
	conn.Write(msg)
	conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("got %q %v", got, err)
	}
}
