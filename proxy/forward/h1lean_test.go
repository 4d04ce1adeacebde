package forward

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/h1"
	"github.com/l5d-go/l5d/proxy/h2"
	"github.com/l5d-go/l5d/proxy/internal/benchcpu"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// startInboundH2 serves HTTP/2 (as from another proxy) on loopback, forwarding every
// request to target over HTTP/1, and returns a client for it.
func startInboundH2(t testing.TB, target netip.AddrPort) (addr string, client *h2.Transport) {
	t.Helper()
	reg := metrics.New()
	ep := NewEndpoint(target, false, reg.HTTP(metrics.Labels("direction", "inbound")))
	bal := balance.New[*Endpoint](balance.Options{})
	bal.Set([]*balance.Endpoint[*Endpoint]{balance.NewEndpoint(target, ep)})
	h := &Handler{
		Router:  fixedRouter{&Backend{Name: target.String(), Balancer: bal}},
		Clients: NewClients(ClientOptions{Connect: TCPConnector(time.Second, 0)}),
	}
	addr = serveH2(t, h, func() *ConnInfo { return &ConnInfo{Direction: "inbound", OrigDst: target} })
	tr := &h2.Transport{Connect: TCPConnector(time.Second, 0)}
	t.Cleanup(tr.CloseIdleConnections)
	return addr, tr
}

func meshedRequest(t *testing.T, tr *h2.Transport, addr, method, path, body string) (*http.Response, string) {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rb)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "app.example"
	req.Header.Set(HeaderOrigProto, "HTTP/1.1")
	req.Header.Set("X-Test", "kept")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, string(got)
}

func TestMeshedRequestsReachHTTP1App(t *testing.T) {
	app, conns := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(req.Body)
			echo := req.Method + " " + req.URL.RequestURI() + " host=" + req.Host + " x-test=" + req.Header.Get("X-Test") +
				" orig-proto=" + req.Header.Get(HeaderOrigProto) + " body=" + string(body)
			switch req.URL.Path {
			case "/chunked":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
					"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n")
			case "/head":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n")
			case "/no-content":
				io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
			case "/until-close":
				io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil the end")
				return
			default:
				io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: ")
				io.WriteString(c, itoa(int64(len(echo)))+"\r\nConnection: X-Private\r\nX-Private: dropped\r\n\r\n"+echo)
			}
		}
	})
	addr, tr := startInboundH2(t, app)

	resp, body := meshedRequest(t, tr, addr, "POST", "/echo?q=1", "abc")
	want := "POST /echo?q=1 host=app.example x-test=kept orig-proto= body=abc"
	if resp.StatusCode != 200 || body != want || resp.Header.Get("X-Private") != "" {
		t.Fatalf("echo: %d %q (want %q), X-Private=%q", resp.StatusCode, body, want, resp.Header.Get("X-Private"))
	}
	resp, body = meshedRequest(t, tr, addr, "GET", "/chunked", "")
	if resp.StatusCode != 200 || body != "hello world" || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("chunked: %d %q trailer=%v", resp.StatusCode, body, resp.Trailer)
	}
	resp, body = meshedRequest(t, tr, addr, "HEAD", "/head", "")
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Length") != "1000" || strings.Join(resp.Header["X-Multi"], ",") != "a,b" {
		t.Fatalf("HEAD: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = meshedRequest(t, tr, addr, "GET", "/no-content", "")
	if resp.StatusCode != 204 || body != "" {
		t.Fatalf("204: %d %q", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("app saw %d connections for keep-alive responses, want 1", n)
	}
	resp, body = meshedRequest(t, tr, addr, "GET", "/until-close", "")
	if resp.StatusCode != 200 || body != "until the end" {
		t.Fatalf("close-delimited: %d %q", resp.StatusCode, body)
	}
	// The connection closed by the app is not reused.
	resp, body = meshedRequest(t, tr, addr, "GET", "/again", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "GET /again ") {
		t.Fatalf("after close: %d %q", resp.StatusCode, body)
	}
}

// TestMeshedStreamedRequestReachesHTTP1App: a meshed request whose body has no declared
// length and ends with trailers reaches an HTTP/1 application chunked, its trailers after
// the body, each part of the body as it is sent.
func TestMeshedStreamedRequestReachesHTTP1App(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		n, _ := io.ReadFull(r.Body, buf)
		first <- string(buf[:n]) // the first part arrived before the client sent the rest
		rest, _ := io.ReadAll(r.Body)
		io.WriteString(w, strings.Join(r.TransferEncoding, ",")+" "+string(buf[:n])+string(rest)+" sum="+r.Trailer.Get("X-Sum"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr, tr := startInboundH2(t, netip.MustParseAddrPort(ln.Addr().String()))

	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", "http://"+addr+"/upload", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "app.example"
	req.ContentLength = -1
	req.Header.Set(HeaderOrigProto, "HTTP/1.1")
	req.Trailer = http.Header{"X-Sum": nil}
	go func() {
		io.WriteString(pw, "hello")
		select {
		case <-first:
		case <-time.After(20 * time.Second): // fails the test below
		}
		req.Trailer.Set("X-Sum", "42")
		io.WriteString(pw, " world")
		pw.Close()
	}()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "chunked hello world sum=42"; resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
	}
}

func TestMeshedRequestGetsBadGatewayForBrokenResponse(t *testing.T) {
	app, _ := rawServer(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 11\r\n\r\n0123456789")
	})
	addr, tr := startInboundH2(t, app)
	resp, _ := meshedRequest(t, tr, addr, "GET", "/", "")
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get(HeaderProxyError) == "" {
		t.Fatalf("got %d %q, want 502 with l5d-proxy-error", resp.StatusCode, resp.Header.Get(HeaderProxyError))
	}
}

// BenchmarkFieldsHeader: the header map of a typical application response (nginx's
// fields), as the lean HTTP/1 client builds it for every response relayed over HTTP/2.
func BenchmarkFieldsHeader(b *testing.B) {
	const head = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 11:47:38 GMT\r\n" +
		"Content-Type: text/plain\r\nContent-Length: 100\r\nConnection: keep-alive\r\nX-Request-Id: 42\r\n\r\n"
	var h h1.Head
	if err := h1.NewReader(strings.NewReader(head)).ReadResponse(&h); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	defer benchcpu.Start(b)()
	for b.Loop() {
		if hdr := fieldsHeader(&h, false, nil); len(hdr) != 5 {
			b.Fatalf("%d fields kept, want 5: %v", len(hdr), hdr)
		}
	}
}

// heldBody is a request body of n bytes whose end (io.EOF) comes only once release is
// closed: a client that sends all its declared bytes but ends the stream later.
type heldBody struct {
	data    *strings.Reader
	release chan struct{}
}

func (b *heldBody) Read(p []byte) (int, error) {
	if b.data.Len() == 0 {
		<-b.release
		return 0, io.EOF
	}
	return b.data.Read(p)
}

// TestMeshedBodyOfDeclaredLengthDoesNotWaitForTheStreamEnd: a meshed request whose body
// has a Content-Length goes on to the application's response once that many bytes are
// relayed, large DATA frames written from the buffers they arrived in, without waiting
// for the stream's end (END_STREAM, which this client holds back), as the Read loop did;
// the application gets the body byte for byte and nothing past it.
func TestMeshedBodyOfDeclaredLengthDoesNotWaitForTheStreamEnd(t *testing.T) {
	const size = 300 << 10 // several 64 KiB frames and a window's worth
	body := strings.Repeat("0123456789abcdef", size/16)
	app, _ := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			got, err := io.ReadAll(req.Body)
			answer := "ok"
			if err != nil || string(got) != body || req.ContentLength != size {
				answer = fmt.Sprintf("got %d bytes (Content-Length %d, %v), not the body sent", len(got), req.ContentLength, err)
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(answer), answer)
		}
	})
	addr, tr := startInboundH2(t, app)
	hb := &heldBody{data: strings.NewReader(body), release: make(chan struct{})}
	defer close(hb.release)
	req, err := http.NewRequest("POST", "http://"+addr+"/upload", hb)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Host = "app.example"
	req.Header.Set(HeaderOrigProto, "HTTP/1.1")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(got) != "ok" {
		t.Fatalf("status %d, body %q (%v); want 200 ok", resp.StatusCode, got, err)
	}
}
