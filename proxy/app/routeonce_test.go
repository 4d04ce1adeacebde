package app

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// TestHandedOffRequestIsRoutedOnce: an HTTP/1 request that the fast path routes and then
// hands to the general handler (a chunked body for a Service reached over HTTP/2) is
// routed once: the gateway counts one authorization for it, as for a request the fast
// path forwards itself, not one per path.
func TestHandedOffRequestIsRoutedOnce(t *testing.T) {
	m := startMeshCP(t)
	app, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d bytes", len(b))
	}))
	meshPair(t, m, app, nil)
	gw, gwIn := startGateway(t, m)
	direct := meshClient(t, m, gwIn, clientIdentity)
	allowed := func() int {
		n := 0
		for line := range strings.SplitSeq(scrape(t, gw), "\n") {
			if !strings.HasPrefix(line, "inbound_http_authz_allow_total{") {
				continue
			}
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			n += int(v)
		}
		return n
	}
	for i, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader("hello")
		if chunked {
			body = iotest.OneByteReader(body) // no length known: sent chunked
		}
		req, err := http.NewRequest("POST", "https://gateway/", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = svc
		if resp, got := do(t, direct, req); resp.StatusCode != 200 || got != "5 bytes" {
			t.Fatalf("chunked=%v: %d %q, want 200 %q", chunked, resp.StatusCode, got, "5 bytes")
		}
		if n := allowed(); n != i+1 {
			t.Errorf("after %d requests (the last chunked=%v), the gateway counted %d authorizations", i+1, chunked, n)
		}
	}
}
