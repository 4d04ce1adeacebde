package app

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkMeshChainHTTP1Trace is BenchmarkMeshChainHTTP1 (both proxies serve tap) with
// tracing off or on (a live collector) and requests without context, with unsampled
// context or with sampled context. Off against on for none and unsampled is what tracing
// costs requests it does not record (nothing: the same allocations per request); the off
// cases are also what the proxy did before tracing; on/sampled is the cost of a span per
// proxy (and of the general handler the sampled requests take instead of the fast path).
func BenchmarkMeshChainHTTP1Trace(b *testing.B) {
	const (
		unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
		sampled   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	)
	for _, bc := range []struct {
		name        string
		on          bool
		traceparent string
	}{
		{"off/none", false, ""},
		{"off/unsampled", false, unsampled},
		{"on/none", true, ""},
		{"on/unsampled", true, unsampled},
		{"on/sampled", true, sampled},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := startMeshCP(b)
			env := map[string]string{}
			for k, v := range tapEnv {
				env[k] = v
			}
			if bc.on {
				for k, v := range traceEnv(b, startCollector(b, m).addr) {
					env[k] = v
				}
			}
			client, _ := meshPair(b, m, benchApp(b), env)
			_, out, _ := client.Addrs()
			c := clientTo(out, false)
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest("GET", "http://"+svc+"/", nil)
				if bc.traceparent != "" {
					req.Header.Set("traceparent", bc.traceparent)
				}
				for pb.Next() {
					resp, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d (l5d-proxy-error %q)", resp.StatusCode, resp.Header.Get("L5d-Proxy-Error"))
						return
					}
				}
			})
		})
	}
}
