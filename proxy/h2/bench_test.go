package h2

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkPostSmallBody: a 100-byte request body and its echo over one lean HTTP/2
// connection (Transport to Server), the shape of a unary gRPC call between proxies.
func BenchmarkPostSmallBody(b *testing.B) {
	tr, base := start(b, echo())
	body := strings.Repeat("x", 100)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", base+"/p", strings.NewReader(body))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
