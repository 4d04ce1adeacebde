package app

import (
	"io"
	"net/http"
	"net/netip"
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
