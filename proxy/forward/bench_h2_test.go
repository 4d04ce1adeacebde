package forward

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/proxy/internal/benchcpu"
)

// BenchmarkFastPathToProxyEndpoint: HTTP/1 requests without a body through the fast path
// to an endpoint that is a proxy (HTTP/2 with l5d-orig-proto, as a meshed client proxy
// sends them), that proxy's inbound handler and an HTTP/1 app answering 100 bytes, all
// in process: the outbound half of the meshed path.
func BenchmarkFastPathToProxyEndpoint(b *testing.B) {
	const body = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
	app, _ := rawServer(b, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nServer: app\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"+body)
		}
	})
	p := startFastProxyToPeer(b, app)
	c, br := dial(b, p.addr)
	const req = "GET /books?page=2 HTTP/1.1\r\nHost: app.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
	b.ReportAllocs()
	defer benchcpu.Start(b)()
	b.ResetTimer()
	for range b.N {
		if _, err := io.WriteString(c, req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(string(got), "0123") {
			b.Fatalf("%d %q", resp.StatusCode, got)
		}
	}
}
