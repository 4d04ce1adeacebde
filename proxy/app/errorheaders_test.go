package app

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/proxy/config"
)

// TestInboundTellsOnlyMeshedClientsWhy: a request the inbound proxy refuses (here by a
// deny default policy) is answered with l5d-proxy-error and the reason to a meshed
// client, and with the bare status to a client without a mesh identity, over HTTP/1 (the
// fast path) and HTTP/2, and for gRPC (whose grpc-status and grpc-message stay).
func TestInboundTellsOnlyMeshedClientsWhy(t *testing.T) {
	m := startMeshCP(t)
	client, server := meshPair(t, m, namedApp(t, "app"), map[string]string{config.EnvInboundDefaultPolicy: "deny"})
	_, out, _ := client.Addrs()
	serverIn, _, _ := server.Addrs()
	for _, h2 := range []bool{false, true} {
		resp, body := get(t, clientTo(out, h2), "http://"+svc+"/")
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("L5d-Proxy-Error") == "" || body == "" {
			t.Errorf("meshed client (h2=%v): %d l5d-proxy-error %q body %q, want 403 with the reason", h2, resp.StatusCode, resp.Header.Get("L5d-Proxy-Error"), body)
		}
		resp, body = get(t, clientTo(serverIn, h2), "http://"+svc+"/")
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("L5d-Proxy-Error") != "" || body != "" {
			t.Errorf("client without identity (h2=%v): %d l5d-proxy-error %q body %q, want a bare 403", h2, resp.StatusCode, resp.Header.Get("L5d-Proxy-Error"), body)
		}
	}
	req, _ := http.NewRequest("POST", "http://"+svc+"/demo.Greeter/Hello", strings.NewReader("\x00\x00\x00\x00\x00"))
	req.Header.Set("Content-Type", "application/grpc")
	resp, _ := do(t, clientTo(serverIn, true), req)
	if resp.Header.Get("Grpc-Status") != "7" || resp.Header.Get("Grpc-Message") == "" || resp.Header.Get("L5d-Proxy-Error") != "" {
		t.Errorf("gRPC client without identity: grpc-status %q grpc-message %q l5d-proxy-error %q, want 7 with a message and no l5d-proxy-error",
			resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message"), resp.Header.Get("L5d-Proxy-Error"))
	}
}

// TestIngressModeErrorsDoNotSayWhy: in ingress mode the outbound proxy's own error
// responses carry no l5d-proxy-error (the ingress relays them to clients outside the
// cluster); otherwise they do.
func TestIngressModeErrorsDoNotSayWhy(t *testing.T) {
	for _, ingress := range []string{"true", "false"} {
		p := startProxy(t, unreachable, netip.AddrPort{}, map[string]string{config.EnvIngressMode: ingress}, nil)
		_, out, _ := p.Addrs()
		for _, h2 := range []bool{false, true} {
			resp, _ := get(t, clientTo(out, h2), "http://example.com/")
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("ingress=%s h2=%v: status %d, want 502 from the unreachable destination", ingress, h2, resp.StatusCode)
			}
			if got := resp.Header.Get("L5d-Proxy-Error"); (got != "") != (ingress == "false") {
				t.Errorf("ingress=%s h2=%v: l5d-proxy-error %q", ingress, h2, got)
			}
		}
	}
}
