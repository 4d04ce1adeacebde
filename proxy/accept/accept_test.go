package accept

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// holdCounter counts the connections holding a destination through Server.Hold.
type holdCounter struct {
	dst            netip.AddrPort
	held, released atomic.Int32
	wrongDst       atomic.Bool
}

func (h *holdCounter) hold(dst netip.AddrPort) func() {
	if dst != h.dst {
		h.wrongDst.Store(true)
	}
	h.held.Add(1)
	return func() { h.released.Add(1) }
}

// serve runs s on a loopback listener until the test ends and returns its address.
func serve(t *testing.T, s *Server) netip.AddrPort {
	t.Helper()
	addr, _ := serveStoppable(t, s)
	return addr
}

// serveStoppable is serve that can also be stopped before the test ends: stop shuts the
// listener down and returns what Serve returned (nil when called again).
func serveStoppable(t testing.TB, s *Server) (addr netip.AddrPort, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, time.Second) }()
	var once sync.Once
	stop = func() (err error) {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().(*net.TCPAddr).AddrPort(), stop
}

// TestConnectionHoldsItsDestinationWhileOpen: an HTTP keep-alive connection and an opaque
// connection each hold their original destination from when they are accepted until
// they are closed, across several exchanges, and release it exactly once.
func TestConnectionHoldsItsDestinationWhileOpen(t *testing.T) {
	for _, opaque := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "opaque"}[opaque]
		t.Run(name, func(t *testing.T) {
			h := &holdCounter{dst: netip.MustParseAddrPort("10.96.0.10:80")}
			s := &Server{
				Direction:     "outbound",
				Fallback:      h.dst,
				DetectTimeout: 10 * time.Second,
				Opaque:        func(netip.AddrPort) bool { return opaque },
				Hold:          h.hold,
				HTTP:          http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "x") }),
				TCP: func(_ context.Context, conn net.Conn, _ *forward.ConnInfo, _ *metrics.TCP) {
					io.Copy(conn, conn)
					conn.Close()
				},
				Metrics: metrics.New(),
			}
			addr := serve(t, s)
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			exchange := func() {
				t.Helper()
				if opaque {
					if _, err := io.WriteString(c, "x"); err != nil {
						t.Fatal(err)
					}
					if b, err := br.ReadByte(); err != nil || b != 'x' {
						t.Fatalf("echo %q %v", b, err)
					}
					return
				}
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.ns.svc.cluster.local\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			exchange()
			exchange()
			if held, released := h.held.Load(), h.released.Load(); held != 1 || released != 0 {
				t.Fatalf("open connection after two exchanges: held %d times, released %d; want 1 and 0", held, released)
			}
			if h.wrongDst.Load() {
				t.Fatal("held a destination other than the connection's")
			}
			c.Close()
			eventually.True(t, "the closed connection to release its destination", func() bool { return h.released.Load() == 1 })
			eventually.True(t, "the connection to be closed on the server", func() bool { return s.OpenConnections() == 0 })
			if held, released := h.held.Load(), h.released.Load(); held != 1 || released != 1 {
				t.Fatalf("after close: held %d times, released %d; want 1 and 1", held, released)
			}
		})
	}
}

// TestOwnPortsAreRefused: an inbound connection whose original destination is one of the
// proxy's own ports (the admin port, say) is closed without being served: delivered to
// loopback, it would reach the admin server as a local client.
func TestOwnPortsAreRefused(t *testing.T) {
	var served atomic.Int32
	for _, own := range []bool{true, false} {
		s := &Server{
			Direction:     "inbound",
			Fallback:      netip.MustParseAddrPort("10.0.0.1:4191"),
			DetectTimeout: 10 * time.Second,
			Opaque:        func(netip.AddrPort) bool { return true },
			OwnPort:       func(p uint16) bool { return own && p == 4191 },
			TCP: func(_ context.Context, conn net.Conn, _ *forward.ConnInfo, _ *metrics.TCP) {
				served.Add(1)
				io.WriteString(conn, "served")
				conn.Close()
			},
			Metrics: metrics.New(),
		}
		c, err := net.Dial("tcp", serve(t, s).String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if want := map[bool]string{true: "", false: "served"}[own]; string(b) != want {
			t.Fatalf("own port %v: got %q, want %q", own, b, want)
		}
	}
	if served.Load() != 1 {
		t.Fatalf("served %d connections, want only the one to another port", served.Load())
	}
}
