package app

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proxy/config"
)

// rawRequest sends one HTTP/1 request head as given to addr and returns the status of
// the response (0 when the connection ends without one).
func rawRequest(t *testing.T, addr netip.AddrPort, head string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestInboundRoutePathNormalized: with a route /admin that admits only a mesh identity
// and an open route /, an unmeshed client cannot reach /admin by spelling its path
// another way (percent-encoded unreserved characters, dot segments, an encoded slash),
// on the HTTP/1 fast path, the general HTTP/1 handler and h2c: such requests are refused
// and the application never serves them.
func TestInboundRoutePathNormalized(t *testing.T) {
	m := startMeshCP(t)
	pol := &scriptedPolicy{changed: make(chan struct{})}
	pol.srv = &inbound.Server{
		Labels: map[string]string{"group": "policy.linkerd.io", "kind": "server", "name": "web-http"},
		Protocol: &inbound.ProxyProtocol{Kind: &inbound.ProxyProtocol_Detect_{Detect: &inbound.ProxyProtocol_Detect{HttpRoutes: []*inbound.HttpRoute{
			pathRoute("admin", "/admin", false, identityAuthz("admin-authz", clientIdentity)),
			pathRoute("open", "/", false, unauthenticated()),
		}}}},
	}
	var mu sync.Mutex
	served := map[string]int{}
	appAddr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served[r.URL.Path]++
		mu.Unlock()
		fmt.Fprint(w, "app")
	}))
	env := m.env(serverIdentity)
	for k, v := range startPolicyService(t, m, pol) {
		env[k] = v
	}
	env[config.EnvInboundDefaultPolicy] = "deny"
	server := startProxy(t, netip.AddrPort{}, appAddr, env, nil)
	waitReady(t, server)
	serverIn, _, _ := server.Addrs()
	h2c := clientTo(serverIn, true)
	h2Status := func(path string) int {
		req, err := http.NewRequest("GET", "http://"+serverIn.String()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := h2c.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually.True(t, "the routes to be in force", func() bool {
		return rawRequest(t, serverIn, "GET /public HTTP/1.1\r\nHost: web\r\n\r\n") == http.StatusOK
	})
	// How each path is answered: on HTTP/1 (fast path: HTTP/1.1; general handler:
	// HTTP/1.0, which the fast path hands over) and over h2c.
	for _, c := range []struct {
		path   string
		want   int
		wantH2 int
	}{
		{"/", http.StatusOK, http.StatusOK},
		{"/public", http.StatusOK, http.StatusOK},
		{"/admin", http.StatusForbidden, http.StatusForbidden},
		{"/%61dmin", http.StatusForbidden, http.StatusForbidden},
		{"/%61%64%6D%69%6E/x", http.StatusForbidden, http.StatusForbidden},
		{"/adm%69n", http.StatusForbidden, http.StatusForbidden},
		{"/public/../admin", http.StatusNotFound, http.StatusNotFound},
		{"/public/%2e%2e/admin", http.StatusNotFound, http.StatusNotFound},
		{"/./admin", http.StatusNotFound, http.StatusNotFound},
		{"/admin%2Fx", http.StatusNotFound, http.StatusNotFound},
		{"/public%2F..%2Fadmin", http.StatusNotFound, http.StatusNotFound},
		{"/public\\..\\admin", http.StatusNotFound, http.StatusNotFound},
		// An invalid percent-encoding is a bad request (the h2c client refuses to
		// send it).
		{"/%zzadmin", http.StatusBadRequest, -1},
		{"/%6", http.StatusBadRequest, -1},
	} {
		for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
			head := "GET " + c.path + " " + proto + "\r\nHost: web\r\n\r\n"
			if got := rawRequest(t, serverIn, head); got != c.want {
				t.Errorf("%s %s: %d, want %d", proto, c.path, got, c.want)
			}
		}
		if c.wantH2 < 0 {
			continue
		}
		if got := h2Status(c.path); got != c.wantH2 {
			t.Errorf("h2c %s: %d, want %d", c.path, got, c.wantH2)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for p, n := range served {
		if p != "/" && p != "/public" {
			t.Errorf("the application served %q %d times", p, n)
		}
	}
}
