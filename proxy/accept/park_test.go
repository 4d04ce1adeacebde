package accept

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
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
func parkingProxy(t testing.TB, opts ...func(*forward.Handler)) (*Server, string, func() error) {
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
	addr, stop := serveStoppable(t, s)
	return s, addr.String(), stop
}

// get sends a keep-alive GET on c and checks the app's answer.
func get(t testing.TB, c net.Conn, br *bufio.Reader) {
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
// stacks in use grow by at most 1.75 KiB per connection, measured after a collection,
// counting both ends of each connection (the test's client end is ~0.3 KiB of heap, the
// proxy's ~0.3 KiB, its socket only and the accept server's record, and the stacks freed
// by the connections' goroutines ~0.4-0.6 KiB more: before parking, a connection kept
// ~7.5 KiB, a 4 KiB goroutine stack among it). Each is served again when its next
// request comes, and closing them all leaves nothing open.
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
	if per > 1792 {
		t.Errorf("%d bytes in use per idle connection, want at most 1792", per)
	}
	for _, c := range cs[:20] {
		get(t, c, bufio.NewReader(c))
	}
}

// waitParked waits until the server has n parked connections.
func waitParked(t *testing.T, s *Server, n int) {
	t.Helper()
	eventually.True(t, "the idle connections to be parked", func() bool { return s.ParkedConnections() == n })
}

// TestParkedConnectionsKeepTheirProtections: a parked connection is served again when
// its next request comes, as often as it parks; it is closed by the idle timeout, and
// one that sends the start of a request head and stops by the header read timeout
// (slowloris); a peer resetting it frees it; shutting the listener down closes the
// parked connections.
func TestParkedConnectionsKeepTheirProtections(t *testing.T) {
	t.Run("keep-alive", func(t *testing.T) {
		s, addr, _ := parkingProxy(t)
		c, br := dialProxy(t, addr)
		for range 3 {
			get(t, c, br)
			waitParked(t, s, 1)
		}
		get(t, c, br)
	})
	t.Run("idle timeout", func(t *testing.T) {
		// Long enough for the connection to be seen parked first on a loaded machine.
		s, addr, _ := parkingProxy(t, func(h *forward.Handler) { h.IdleTimeout = 3 * time.Second })
		c, br := dialProxy(t, addr)
		get(t, c, br)
		waitParked(t, s, 1)
		if !closedByProxy(c) {
			t.Fatal("the parked connection outlived the idle timeout")
		}
		eventually.True(t, "the connection to be closed", func() bool { return s.OpenConnections() == 0 && s.ParkedConnections() == 0 })
	})
	t.Run("header read timeout", func(t *testing.T) {
		s, addr, _ := parkingProxy(t, func(h *forward.Handler) { h.HeaderReadTimeout = 100 * time.Millisecond })
		c, br := dialProxy(t, addr)
		get(t, c, br)
		waitParked(t, s, 1)
		io.WriteString(c, "GET / HTTP/1.1\r\nHo")
		// The idle timeout is 90 s and the client's deadline 30 s: only the header read
		// timeout ends the connection before it.
		if !closedByProxy(c) {
			t.Fatal("a partial request head kept the connection open")
		}
	})
	t.Run("peer reset", func(t *testing.T) {
		s, addr, _ := parkingProxy(t)
		c, br := dialProxy(t, addr)
		get(t, c, br)
		waitParked(t, s, 1)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		eventually.True(t, "the reset connection to be closed", func() bool { return s.OpenConnections() == 0 && s.ParkedConnections() == 0 })
	})
	t.Run("shutdown", func(t *testing.T) {
		s, addr, stop := parkingProxy(t)
		var cs []net.Conn
		for range 5 {
			c, br := dialProxy(t, addr)
			get(t, c, br)
			cs = append(cs, c)
		}
		waitParked(t, s, 5)
		if err := stop(); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		for i, c := range cs {
			if !closedByProxy(c) {
				t.Fatalf("connection %d stayed open after the shutdown", i)
			}
		}
		if s.OpenConnections() != 0 {
			t.Fatalf("%d connections open after Serve returned", s.OpenConnections())
		}
	})
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestParkingLeaksNoDescriptors: rounds of connections that are parked and then closed
// by the client, reset by it, resumed and closed, or left to the proxy's shutdown end
// with as many file descriptors open as before them.
func TestParkingLeaksNoDescriptors(t *testing.T) {
	s, addr, stop := parkingProxy(t)
	warm, br := dialProxy(t, addr)
	get(t, warm, br) // the proxy's pooled connection to the app
	warm.Close()
	eventually.True(t, "the first connection to be closed", func() bool { return s.OpenConnections() == 0 })
	before := openFDs(t)
	const perRound = 40
	for round := range 3 {
		var cs []net.Conn
		var brs []*bufio.Reader
		for range perRound {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			br := bufio.NewReader(c)
			get(t, c, br)
			cs, brs = append(cs, c), append(brs, br)
		}
		waitParked(t, s, perRound)
		for i, c := range cs {
			switch i % 3 {
			case 0:
				c.Close()
			case 1:
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			case 2:
				get(t, c, brs[i])
				c.Close()
			}
		}
		eventually.True(t, "round "+strconv.Itoa(round)+"'s connections to be closed", func() bool {
			return s.OpenConnections() == 0 && s.ParkedConnections() == 0
		})
	}
	eventually.True(t, "the descriptors to be closed", func() bool { return openFDs(t) <= before })
	for range 5 {
		c, br := dialProxy(t, addr)
		get(t, c, br)
	}
	waitParked(t, s, 5)
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// The clients' ends of the shut-down connections stay open until the test ends.
	if n := openFDs(t); n > before+5 {
		t.Fatalf("%d descriptors open after the shutdown, want at most %d (before, and the 5 clients' ends)", n, before+5)
	}
}

// infoRecorder routes as next does, keeping what each request's connection was known as.
type infoRecorder struct {
	next forward.Router
	mu   sync.Mutex
	seen []routedAs
}

// routedAs is what a request's connection was known as.
type routedAs struct {
	direction       string
	origDst, client netip.AddrPort
	tls             bool
	clientID        string
}

func (r *infoRecorder) Route(req *http.Request, ci *forward.ConnInfo) (*forward.Backend, error) {
	r.mu.Lock()
	r.seen = append(r.seen, routedAs{ci.Direction, ci.OrigDst, ci.Client, ci.TLS, ci.ClientID})
	r.mu.Unlock()
	return r.next.Route(req, ci)
}

// TestResumedConnectionKeepsItsInfo: a parked connection, whose ConnInfo is dropped
// while it waits, is routed after it resumes as the same connection: direction, original
// destination and client address as for its first request.
func TestResumedConnectionKeepsItsInfo(t *testing.T) {
	rec := &infoRecorder{}
	s, addr, _ := parkingProxy(t, func(h *forward.Handler) { rec.next, h.Router = h.Router, rec })
	c, br := dialProxy(t, addr)
	for range 3 {
		get(t, c, br)
		waitParked(t, s, 1)
	}
	get(t, c, br)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	client := c.LocalAddr().(*net.TCPAddr).AddrPort()
	want := routedAs{direction: "outbound", origDst: netip.MustParseAddrPort("10.96.0.10:80"), client: client}
	if len(rec.seen) != 4 {
		t.Fatalf("%d requests routed, want 4", len(rec.seen))
	}
	for i, got := range rec.seen {
		if got != want {
			t.Errorf("request %d (after %d parkings): routed as %+v, want %+v", i+1, i, got, want)
		}
	}
}

// BenchmarkParkedRequest: a request on a busy keep-alive connection, and one on a
// connection parked since its previous request (the wait for the parking is not timed).
// The allocations in excess are what resuming costs (a goroutine, the fast-path state
// made again); the time in excess is mostly that of waking a process that was idle,
// which a connection idle as long but not parked pays too.
func BenchmarkParkedRequest(b *testing.B) {
	for _, parked := range []bool{false, true} {
		name := map[bool]string{false: "busy", true: "parked"}[parked]
		b.Run(name, func(b *testing.B) {
			s, addr, _ := parkingProxy(b)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			exchange := func() { get(b, c, br) }
			exchange()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if parked {
					b.StopTimer()
					eventually.True(b, "the connection to be parked", func() bool { return s.ParkedConnections() == 1 })
					b.StartTimer()
				}
				exchange()
			}
		})
	}
}
