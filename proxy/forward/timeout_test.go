package forward

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// TestFastPathHeadAndBodyTimeouts: a client that stops in the middle of a request head
// is cut off after HeaderReadTimeout (not after the idle timeout), and one that stops
// sending its request body after BodyIdleTimeout. The timeouts are short here and the
// test only waits, within the dial deadline of 30 s, for the connections to end: with
// the 90 s idle timeout, or no body deadline, it fails.
func TestFastPathHeadAndBodyTimeouts(t *testing.T) {
	addr, _ := headServer(t, nil, func(h *Handler) {
		h.HeaderReadTimeout = 50 * time.Millisecond
		h.BodyIdleTimeout = 50 * time.Millisecond
	})
	for _, c := range []struct{ name, sent string }{
		{"partial head", "GET / HTTP/1.1\r\nHost: ap"},
		{"partial head after a request", "GET / HTTP/1.1\r\nHost: app\r\n\r\nGET / HTTP/1.1\r\nHo"},
		{"stalled body", "POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\n\r\nab"},
		{"stalled chunked body", "POST / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, _ := dial(t, addr)
			io.WriteString(conn, c.sent)
			// The proxy closes the connection; the client sees the end of it (after
			// any response to a complete request) before its own deadline.
			_, err := io.ReadAll(conn)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the proxy kept the connection open: %v", err)
			}
		})
	}
}

// TestGeneralHandlerBodyTimeout: the general handler abandons an HTTP/1 request body
// that makes no progress for BodyIdleTimeout, and a body that comes whole is forwarded
// with the connection usable afterwards.
func TestGeneralHandlerBodyTimeout(t *testing.T) {
	app, _ := httpServer(t)
	reg := metrics.New()
	ep := NewEndpoint(app, false, reg.HTTP(metrics.Labels("direction", "outbound")))
	bal := balance.New[*Endpoint](balance.Options{})
	bal.Set([]*balance.Endpoint[*Endpoint]{balance.NewEndpoint(app, ep)})
	h := &Handler{
		Router:          fixedRouter{&Backend{Name: app.String(), Balancer: bal}},
		Clients:         NewClients(ClientOptions{Connect: TCPConnector(time.Second, 0)}),
		BodyIdleTimeout: 50 * time.Millisecond,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	conn, br := dial(t, ln.Addr().String())
	if resp, body := roundTrip(t, conn, br, "POST /a HTTP/1.1\r\nHost: app\r\nContent-Length: 2\r\n\r\nhi"); resp.StatusCode != 200 || body != "POST /a hi" {
		t.Fatalf("whole body: %d %q", resp.StatusCode, body)
	}
	io.WriteString(conn, "POST /b HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\n\r\nab")
	_, err = io.ReadAll(br)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the stalled body kept the connection open: %v", err)
	}
}
