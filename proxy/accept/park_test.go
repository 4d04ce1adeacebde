package accept

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// oneBackend routes every request to one backend.
type oneBackend struct{ be *forward.Backend }

func (r oneBackend) Route(*http.Request, *forward.ConnInfo) (*forward.Backend, error) {
	return r.be, nil
}

// parkingProxy is an outbound listener whose HTTP/1 connections take the fast path to
// an app on loopback answering "ok", as the proxy's outbound side serves an application's
// connections. The handler's timeouts may be set by opts.
func parkingProxy(t *testing.T, opts ...func(*forward.Handler)) (*Server, string, func() error) {
	t.Helper()
	app, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go appSrv.Serve(app)
	t.Cleanup(func() { appSrv.Close() })
	target := app.Addr().(*net.TCPAddr).AddrPort()
	reg := metrics.New()
	bal := balance.New[*forward.Endpoint](balance.Options{})
	bal.Set([]*balance.Endpoint[*forward.Endpoint]{balance.NewEndpoint(target,
		forward.NewEndpoint(target, false, reg.HTTP(metrics.Labels("direction", "outbound"))))})
	h := &forward.Handler{Router: oneBackend{&forward.Backend{Name: "app", Balancer: bal}},
		Clients: forward.NewClients(forward.ClientOptions{Connect: forward.TCPConnector(time.Second, 0)})}
	for _, o := range opts {
		o(h)
	}
	s := &Server{
		Direction:     "outbound",
		Fallback:      netip.MustParseAddrPort("10.96.0.10:80"),
		DetectTimeout: 10 * time.Second,
		HTTP:          h,
		TCP:           func(_ context.Context, conn net.Conn, _ *forward.ConnInfo, _ *metrics.TCP) { conn.Close() },
		Metrics:       reg,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, time.Second) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return s, ln.Addr().String(), stop
}

// get sends a keep-alive GET on c and checks the app's answer.
func get(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, b)
	}
}

func dialProxy(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, bufio.NewReader(c)
}

// closedByProxy reports whether the proxy closed c (the client reads the end of the
// stream, or a reset) before c's own deadline.
func closedByProxy(c net.Conn) bool {
	_, err := io.ReadAll(c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestIdleConnectionsHoldLittle: 2,000 keep-alive connections through the fast path,
// one request each, then idle, are all parked: they keep no goroutine, and the heap and
// stacks in use grow by less than 3 KiB per connection, measured after a collection,
// counting both ends of each connection (the test's client end is ~0.5 KiB: before
// parking, a connection kept ~7.5 KiB, a 4 KiB goroutine stack among it). Each is
// served again when its next request comes, and closing them all leaves nothing open.
func TestIdleConnectionsHoldLittle(t *testing.T) {
	s, addr, _ := parkingProxy(t)
	open := func(n int) []net.Conn {
		cs := make([]net.Conn, n)
		for i := range cs {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			get(t, c, bufio.NewReader(c))
			cs[i] = c
		}
		return cs
	}
	closeAll := func(cs []net.Conn) {
		for _, c := range cs {
			c.Close()
		}
		eventually.True(t, "the proxy to close the connections", func() bool {
			return s.OpenConnections() == 0 && s.ParkedConnections() == 0
		})
	}
	closeAll(open(50)) // the app's pooled connection, the poller's map, the goroutines' free list

	const n = 2000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	cs := open(n)
	defer closeAll(cs)
	eventually.True(t, "every idle connection to be parked", func() bool { return s.ParkedConnections() == n })
	// Twice: the stacks of the goroutines that served the connections go back to the
	// heap over two collections.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if g := runtime.NumGoroutine() - goroutines; g > n/100 {
		t.Errorf("%d more goroutines with %d parked connections, want at most %d", g, n, n/100)
	}
	inUse := func(m *runtime.MemStats) int64 { return int64(m.HeapAlloc + m.StackInuse) }
	per := (inUse(&after) - inUse(&before)) / n
	t.Logf("%d idle connections: %d bytes of heap and stacks each (heap %d, stacks %d), %d goroutines more",
		n, per, (int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, (int64(after.StackInuse)-int64(before.StackInuse))/n,
		runtime.NumGoroutine()-goroutines)
	if per > 3072 {
		t.Errorf("%d bytes in use per idle connection, want at most 3072", per)
	}
	for _, c := range cs[:20] {
		get(t, c, bufio.NewReader(c))
	}
}
