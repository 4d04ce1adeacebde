package forward

import (
	"io"
	"net"
	"testing"
	"time"
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
