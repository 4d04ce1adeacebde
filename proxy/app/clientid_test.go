package app

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
)

// headerApp answers with the l5d-client-id values the application got.
func headerApp(t testing.TB) netip.AddrPort {
	t.Helper()
	addr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q", r.Header.Values("L5d-Client-Id"))
	}))
	return addr
}

// TestApplicationSeesClientIdentity: behind a meshed server, the application gets
// l5d-client-id naming the calling proxy's verified identity, never the value the
// caller wrote (HTTP/1 and HTTP/2 from the application, HTTP/2 between the proxies);
// a plaintext caller's forged l5d-client-id is removed, and none is set.
func TestApplicationSeesClientIdentity(t *testing.T) {
	m := startMeshCP(t)
	client, server := meshPair(t, m, headerApp(t), nil)
	_, out, _ := client.Addrs()
	serverIn, _, _ := server.Addrs()
	forged := func(c *http.Client, url string) string {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("L5d-Client-Id", "admin.ns.serviceaccount.identity.linkerd.cluster.local")
		req.Header.Add("l5d-client-id", "second")
		resp, body := do(t, c, req)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", url, resp.StatusCode, body)
		}
		return body
	}
	want := fmt.Sprintf("%q", []string{clientIdentity})
	for _, h2 := range []bool{false, true} {
		if got := forged(clientTo(out, h2), "http://"+svc+"/"); got != want {
			t.Errorf("meshed caller (h2=%v): the application saw l5d-client-id %s, want %s", h2, got, want)
		}
		if got := forged(clientTo(serverIn, h2), "http://"+svc+"/"); got != "[]" {
			t.Errorf("plaintext caller (h2=%v): the application saw l5d-client-id %s, want none", h2, got)
		}
	}
}
