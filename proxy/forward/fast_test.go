package forward

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// fixedRouter sends every request to one backend.
type fixedRouter struct{ be *Backend }

func (r fixedRouter) Route(*http.Request, *ConnInfo) (*Backend, error) { return r.be, nil }

// fastProxy serves the fast path on a loopback listener forwarding to target, and records
// what each connection handed off to the general handler.
type fastProxy struct {
	addr     string
	reg      *metrics.Registry
	handoffs chan []byte
	// h is the proxy's handler and target the app it forwards to.
	h      *Handler
	target netip.AddrPort
}

func startFastProxy(t testing.TB, target netip.AddrPort, opts ...func(*Handler)) *fastProxy {
	t.Helper()
	reg := metrics.New()
	ep := NewEndpoint(target, false, reg.HTTP(metrics.Labels("direction", "outbound")))
	bal := balance.New[*Endpoint](balance.Options{})
	bal.Set([]*balance.Endpoint[*Endpoint]{balance.NewEndpoint(target, ep)})
	h := &Handler{
		Router:  fixedRouter{&Backend{Name: target.String(), Balancer: bal}},
		Clients: NewClients(ClientOptions{Connect: TCPConnector(time.Second, 0)}),
	}
	for _, o := range opts {
		o(h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ln.Close() })
	p := &fastProxy{addr: ln.Addr().String(), reg: reg, handoffs: make(chan []byte, 10), h: h, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go h.ServeHTTP1(ctx, c, &ConnInfo{Direction: "outbound", OrigDst: target}, func(pending []byte) {
				p.handoffs <- append([]byte(nil), pending...)
				c.Close()
			})
		}
	}()
	return p
}

// rawServer accepts connections on loopback and runs serve on each; it counts them.
func rawServer(t testing.TB, serve func(c net.Conn)) (netip.AddrPort, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort(), &n
}

// httpServer is an HTTP/1.1 app on loopback answering with the request's method, path and
// body; it counts connections.
func httpServer(t *testing.T) (netip.AddrPort, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Hop-Seen", r.Header.Get("X-Hop"))
			fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).AddrPort(), &conns
}

func dial(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("reading response to %q: %v", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(body)
}

func TestFastPathKeepAliveReusesEndpointConnection(t *testing.T) {
	app, conns := httpServer(t)
	p := startFastProxy(t, app)
	c, br := dial(t, p.addr)
	for i := range 20 {
		resp, body := roundTrip(t, c, br, fmt.Sprintf("POST /r%d HTTP/1.1\r\nHost: app\r\nConnection: X-Hop\r\nX-Hop: secret\r\nContent-Length: 2\r\n\r\nhi", i))
		if want := fmt.Sprintf("POST /r%d hi", i); resp.StatusCode != 200 || body != want {
			t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, body, want)
		}
		if resp.Header.Get("X-Hop-Seen") != "" {
			t.Fatalf("a field listed in Connection was forwarded")
		}
	}
	// Chunked request body, relayed verbatim.
	resp, body := roundTrip(t, c, br, "PUT /c HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
	if resp.StatusCode != 200 || body != "PUT /c abcde" {
		t.Fatalf("chunked request: %d %q", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("the app saw %d connections for 21 sequential requests, want 1 (pooled)", n)
	}
	if len(p.handoffs) != 0 {
		t.Fatalf("plain requests were handed to the general handler")
	}
}

func TestFastPathRetriesWhenPooledConnectionWasClosed(t *testing.T) {
	// The app answers one request per connection and then closes it without saying so,
	// as servers with short keep-alive timeouts do.
	app, conns := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	p := startFastProxy(t, app)
	c, br := dial(t, p.addr)
	for i := range 5 {
		resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 5 {
		t.Fatalf("app connections = %d, want 5", n)
	}
}

func TestFastPathCloseDelimitedAndHeadResponses(t *testing.T) {
	app, _ := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Method == "HEAD" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil the end")
	})
	p := startFastProxy(t, app)
	c, br := dial(t, p.addr)
	resp, body := roundTrip(t, c, br, "HEAD / HTTP/1.1\r\nHost: app\r\n\r\n")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 1000 {
		t.Fatalf("HEAD: %d len=%d %q", resp.StatusCode, resp.ContentLength, body)
	}
	resp, body = roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
	if resp.StatusCode != 200 || body != "until the end" || !resp.Close {
		t.Fatalf("close-delimited: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("client connection still open after a close-delimited response: %v", err)
	}
}

func TestFastPathHandsUpgradesToTheGeneralHandler(t *testing.T) {
	app, _ := httpServer(t)
	p := startFastProxy(t, app)
	c, br := dial(t, p.addr)
	if resp, _ := roundTrip(t, c, br, "GET /first HTTP/1.1\r\nHost: app\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	ws := "GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	io.WriteString(c, ws)
	select {
	case got := <-p.handoffs:
		if string(got) != ws {
			t.Fatalf("handed off %q, want the whole upgrade request %q", got, ws)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("upgrade request was not handed off")
	}
}

func TestFastPathConnectFailureIs502(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	p := startFastProxy(t, dead)
	c, br := dial(t, p.addr)
	for range 2 { // the connection stays usable after a proxy error
		resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(resp.Header.Get(HeaderProxyError), "connection refused") {
			t.Fatalf("got %d %q, want 502 with l5d-proxy-error", resp.StatusCode, resp.Header.Get(HeaderProxyError))
		}
	}
	var sb strings.Builder
	p.reg.WriteTo(&sb)
	if !strings.Contains(sb.String(), `status_code="502"`) {
		t.Fatalf("502 not recorded in metrics:\n%s", sb.String())
	}
}

// startFastProxyToPeer serves the fast path forwarding to a proxy endpoint (HTTP/2 with
// l5d-orig-proto): an inbound handler in front of app.
func startFastProxyToPeer(t testing.TB, app netip.AddrPort) *fastProxy {
	t.Helper()
	peer, _ := startInboundH2(t, app)
	return startFastProxyToProxy(t, netip.MustParseAddrPort(peer))
}

// startFastProxyToProxy serves the fast path forwarding to peer as to a proxy endpoint.
func startFastProxyToProxy(t testing.TB, peer netip.AddrPort) *fastProxy {
	t.Helper()
	reg := metrics.New()
	bal := balance.New[*Endpoint](balance.Options{})
	bal.Set([]*balance.Endpoint[*Endpoint]{balance.NewEndpoint(peer, NewEndpoint(peer, true, reg.HTTP(metrics.Labels("direction", "outbound"))))})
	return startFastProxy(t, peer, func(h *Handler) { h.Router = fixedRouter{&Backend{Name: "app.example", Balancer: bal}} })
}

// TestFastPathToProxyEndpoint: a request without a body for an endpoint that is a proxy
// goes over HTTP/2 straight from its HTTP/1 head: the application behind the far proxy
// gets the request target, the authority as Host, the end-to-end fields (repeated ones in
// order, whether or not they repeat the previous request's) and none of the
// connection's own; the response, chunked with a trailer, comes back to the HTTP/1
// client as it was sent.
func TestFastPathToProxyEndpoint(t *testing.T) {
	app, _ := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			seen := req.Method + " " + req.RequestURI + " host=" + req.Host +
				" multi=" + strings.Join(req.Header.Values("X-Multi"), ",") + " mixed=" + req.Header.Get("X-Mixed-Case") +
				" private=" + req.Header.Get("X-Private") + " orig-proto=" + req.Header.Get(HeaderOrigProto)
			if req.URL.Path == "/chunked" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
					fmt.Sprintf("%x", len(seen))+"\r\n"+seen+"\r\n0\r\nX-Sum: 42\r\n\r\n")
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(int64(len(seen)))+"\r\nX-App: yes\r\n\r\n"+seen)
		}
	})
	p := startFastProxyToPeer(t, app)
	c, br := dial(t, p.addr)
	resp, body := roundTrip(t, c, br, "GET /p?q=1 HTTP/1.1\r\nHost: app.example\r\nx-MIXED-case: a\r\nConnection: X-Private\r\n"+
		"X-Private: dropped\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n")
	want := "GET /p?q=1 host=app.example multi=1,2 mixed=a private= orig-proto="
	if resp.StatusCode != 200 || body != want || resp.Header.Get("X-App") != "yes" {
		t.Fatalf("got %d %q (X-App %q), want 200 %q", resp.StatusCode, body, resp.Header.Get("X-App"), want)
	}
	resp, body = roundTrip(t, c, br, "GET /chunked HTTP/1.1\r\nHost: app.example\r\n\r\n")
	if want := "GET /chunked host=app.example multi= mixed= private= orig-proto="; resp.StatusCode != 200 || body != want ||
		len(resp.TransferEncoding) == 0 || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("chunked: %d %q %v trailer %v, want %q chunked with X-Sum 42", resp.StatusCode, body, resp.TransferEncoding, resp.Trailer, want)
	}
	// The same fields twice in a row (their copy for HPACK is reused), then others.
	for _, v := range []string{"3", "3", "4"} {
		resp, body = roundTrip(t, c, br, "GET /p HTTP/1.1\r\nHost: app.example\r\nX-Multi: "+v+"\r\n\r\n")
		if want := "GET /p host=app.example multi=" + v + " mixed= private= orig-proto="; resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
	select {
	case b := <-p.handoffs:
		t.Fatalf("handed off %q, want both requests on the fast path", b)
	default:
	}

	// A proxy endpoint that cannot be reached: 502, and the client connection stays usable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	p = startFastProxyToProxy(t, dead)
	c, br = dial(t, p.addr)
	for range 2 {
		resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: dead.example\r\n\r\n")
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(resp.Header.Get(HeaderProxyError), "connection refused") {
			t.Fatalf("unreachable proxy: %d %q, want 502 saying connection refused", resp.StatusCode, resp.Header.Get(HeaderProxyError))
		}
	}
}
