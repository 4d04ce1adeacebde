package mesh

import (
	"net/netip"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/test/netns"
)

// podAnswer makes a GET from inside p with Host host and returns the status and body (0
// and "" when the request failed).
func podAnswer(p *netns.Pod, url, host string) (int, string) { return podRequest(p, url, host, nil) }

// TestHTTPRouteMovesTrafficToAnotherService: a meshed client's requests for Service web
// reach web's pod until an HTTPRoute whose parent is web sends weight 0 to web and 100
// to web-v2; then every request reaches web-v2's pod, through the real policy controller
// and destination service, and a rule whose backend Service does not exist answers 500.
func TestHTTPRouteMovesTrafficToAnotherService(t *testing.T) {
	w := newWorld(t, 24*time.Hour)
	web := w.pod(t, "web", "web", true, nil)
	serveApp(t, web)
	v2 := w.pod(t, "web-v2", "web-v2", true, nil)
	serveApp(t, v2)
	authority := w.service(t, "web")
	w.service(t, "web-v2")
	client := w.pod(t, "client", "client", true, nil)
	target := "http://" + netip.AddrPortFrom(web.IPv4, 8080).String() + "/"
	eventually.True(t, "the client to reach web", func() bool {
		code, body := podAnswer(client, target, authority)
		return code == 200 && body == "web"
	})

	w.c.Apply(t, w.appNS, `apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: web-canary}
spec:
  parentRefs: [{group: core, kind: Service, name: web, port: 8080}]
  rules:
    - backendRefs:
        - {name: web, port: 8080, weight: 0}
        - {name: web-v2, port: 8080, weight: 100}
    - matches: [{path: {type: PathPrefix, value: /gone}}]
      backendRefs: [{name: gone, port: 8080}]
`)
	eventually.True(t, "the HTTPRoute to move traffic to web-v2", func() bool {
		code, body := podAnswer(client, target, authority)
		return code == 200 && body == "web-v2"
	})
	// A backend Service that does not exist fails its requests.
	if code, _ := podAnswer(client, target+"gone/x", authority); code != 500 {
		t.Fatalf("request to the rule whose backend Service does not exist: %d, want 500", code)
	}
	for i := range 20 {
		if code, body := podAnswer(client, target, authority); code != 200 || body != "web-v2" {
			t.Fatalf("request %d after the HTTPRoute: %d %q, want 200 from web-v2", i, code, body)
		}
	}
}
