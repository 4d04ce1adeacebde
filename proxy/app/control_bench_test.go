package app

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"

	pb "github.com/l5d-go/l5d/proto/gen/tap"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/benchcpu"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// BenchmarkMeshChainHTTP1: client -> outbound proxy -> (discovery, mTLS 1.3, HTTP/2
// between proxies) -> inbound proxy -> app on loopback, with scripted identity and
// destination services. Compare with BenchmarkChainHTTP1 for the cost of identity and
// discovery on the request path. Both proxies serve tap, as meshed proxies do, with no
// session open.
func BenchmarkMeshChainHTTP1(b *testing.B) {
	m := startMeshCP(b)
	client, _ := meshPair(b, m, benchApp(b), tapEnv)
	benchMeshChain(b, client)
}

// BenchmarkMeshChainHTTP1Tapped is BenchmarkMeshChainHTTP1 with a tap session open on
// each proxy that observes every request, its events read as they come: the cost of
// being tapped.
func BenchmarkMeshChainHTTP1Tapped(b *testing.B) {
	m := startMeshCP(b)
	client, server := meshPair(b, m, benchApp(b), tapEnv)
	for _, p := range []struct {
		proxy *Proxy
		name  string
	}{{client, clientIdentity}, {server, serverIdentity}} {
		s := observe(b, tapClient(b, m, p.proxy, p.name, tapIdentity, false), p.proxy, &pb.ObserveRequest{})
		go func() {
			for {
				if _, err := s.Recv(); err != nil {
					return
				}
			}
		}()
	}
	benchMeshChain(b, client)
}

func benchMeshChain(b *testing.B, client *Proxy) { benchMeshChainTo(b, client, svc) }

// BenchmarkGatewayChainHTTP1 is BenchmarkMeshChainHTTP1 through a multicluster gateway:
// client proxy -> gateway proxy -> server proxy -> app, the client asking for the
// Service's mirror. Compare with BenchmarkMeshChainHTTP1 in the same run for the cost of
// the gateway's hop.
func BenchmarkGatewayChainHTTP1(b *testing.B) {
	m := startMeshCP(b)
	client, _ := meshPair(b, m, benchApp(b), tapEnv)
	_, gwIn := startGateway(b, m)
	m.dst.Set(mirrorSvc, scriptedcp.Endpoint{Addr: gwIn, Identity: gatewayIdentity, H2: true, AuthorityOverride: svc})
	benchMeshChainTo(b, client, mirrorSvc)
}

// benchMeshChainTo sends parallel requests for authority through the client proxy.
func benchMeshChainTo(b *testing.B, client *Proxy, authority string) {
	_, out, _ := client.Addrs()
	c := clientTo(out, false)
	b.ReportAllocs()
	b.SetParallelism(4)
	defer benchcpu.Start(b)()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get("http://" + authority + "/")
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkMeshChainHTTP1Serial is BenchmarkMeshChainHTTP1 with one request at a time:
// the latency path, where each proxy has a single stream under way.
func BenchmarkMeshChainHTTP1Serial(b *testing.B) {
	m := startMeshCP(b)
	client, _ := meshPair(b, m, benchApp(b), tapEnv)
	_, out, _ := client.Addrs()
	c := clientTo(out, false)
	b.ReportAllocs()
	defer benchcpu.Start(b)()
	b.ResetTimer()
	for range b.N {
		resp, err := c.Get("http://" + svc + "/")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkMeshChainHTTP1AccessLog is BenchmarkMeshChainHTTP1 with the server proxy
// writing a JSON access log line per request (to io.Discard): the cost of access logging.
func BenchmarkMeshChainHTTP1AccessLog(b *testing.B) {
	m := startMeshCP(b)
	env := m.env(serverIdentity)
	for k, v := range tapEnv {
		env[k] = v
	}
	env[config.EnvAccessLog] = "json"
	server := startProxyWith(b, netip.AddrPort{}, benchApp(b), env, Options{AccessLog: io.Discard})
	withTap := m.env(clientIdentity)
	for k, v := range tapEnv {
		withTap[k] = v
	}
	client := startProxy(b, unreachable, netip.AddrPort{}, withTap, nil)
	waitReady(b, server)
	waitReady(b, client)
	serverIn, _, _ := server.Addrs()
	m.dst.Set(svc, scriptedcp.Endpoint{Addr: serverIn, Identity: serverIdentity, H2: true})
	benchMeshChain(b, client)
}

// BenchmarkMeshChainLargeBody is BenchmarkMeshChainHTTP1 with 1 MiB request bodies and
// 1 MiB responses (the app reads the whole body before answering): the cost of carrying
// bytes, per MB (SetBytes counts both directions).
func BenchmarkMeshChainLargeBody(b *testing.B) {
	const size = 1 << 20
	payload := strings.Repeat("x", size)
	app, _ := serveHTTP(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.WriteString(w, payload)
	}))
	m := startMeshCP(b)
	client, _ := meshPair(b, m, app, tapEnv)
	_, out, _ := client.Addrs()
	c := clientTo(out, false)
	b.ReportAllocs()
	b.SetBytes(2 * size)
	b.SetParallelism(2)
	defer benchcpu.Start(b)()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Post("http://"+svc+"/", "application/octet-stream", strings.NewReader(payload))
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || n != size {
				b.Errorf("status %d, %d bytes", resp.StatusCode, n)
				return
			}
		}
	})
}

// BenchmarkMeshChainIdleConns: each operation opens a client connection to the outbound
// proxy of a meshed pair (as BenchmarkMeshChainHTTP1), sends one request on it and
// reads the response, then leaves it open and idle. The metrics are the growth of the
// process's heap and goroutine stacks in use per idle connection (B/conn, after
// collections that hand back what only pools hold; the clients' sockets included), its
// stacks' part (stack-B/conn) and goroutines per connection. Memory, not speed: run it
// with a fixed count (-benchtime 2000x).
func BenchmarkMeshChainIdleConns(b *testing.B) {
	m := startMeshCP(b)
	client, _ := meshPair(b, m, benchApp(b), tapEnv)
	_, out, _ := client.Addrs()
	idleConn(b, out) // the first connection sets up what all share (HTTP/2 to the server proxy)
	before := memInUse()
	b.ResetTimer()
	for range b.N {
		idleConn(b, out)
	}
	b.StopTimer()
	after := memInUse()
	b.ReportMetric(float64(after.heap-before.heap+after.stack-before.stack)/float64(b.N), "B/conn")
	b.ReportMetric(float64(after.stack-before.stack)/float64(b.N), "stack-B/conn")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/float64(b.N), "goroutines/conn")
}

// idleConn opens a connection to the proxy listening on addr, sends one request for svc
// and reads its response, and leaves the connection open until the test ends.
func idleConn(t testing.TB, addr netip.AddrPort) {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+svc+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// memUse is what the process has in use: heap and goroutine stack bytes, goroutines.
type memUse struct{ heap, stack, goroutines int64 }

// memInUse returns the process's memory in use after collections that shrink idle
// goroutines' stacks and empty the pools.
func memInUse() memUse {
	for range 4 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memUse{heap: int64(ms.HeapInuse), stack: int64(ms.StackInuse), goroutines: int64(runtime.NumGoroutine())}
}
