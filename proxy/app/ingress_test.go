package app

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// TestIngressModeRoutesByDstOverride: an ingress controller's proxy in ingress mode
// (LINKERD2_PROXY_INGRESS_MODE=true) sends a request to the Service its l5d-dst-override
// names, over mesh TLS to that Service's endpoint, whatever its Host; without the header
// it routes by Host as any proxy does. A proxy in the default mode ignores the header.
func TestIngressModeRoutesByDstOverride(t *testing.T) {
	m := startMeshCP(t)
	const (
		web = "web.ns.svc.cluster.local:80"
		api = "api.ns.svc.cluster.local:80"
	)
	webServer := startProxy(t, netip.AddrPort{}, namedApp(t, "web"), m.env(serverIdentity), nil)
	const apiIdentity = "api.ns.serviceaccount.identity.linkerd.cluster.local"
	apiServer := startProxy(t, netip.AddrPort{}, namedApp(t, "api"), m.env(apiIdentity), nil)
	waitReady(t, webServer)
	waitReady(t, apiServer)
	webIn, _, _ := webServer.Addrs()
	apiIn, _, _ := apiServer.Addrs()
	m.dst.Set(web, scriptedcp.Endpoint{Addr: webIn, Identity: serverIdentity, H2: true})
	m.dst.Set(api, scriptedcp.Endpoint{Addr: apiIn, Identity: apiIdentity, H2: true})

	for _, tc := range []struct {
		ingress   string
		override  string
		want      string
		wantAPIID bool
	}{
		{"true", api, "api", true},
		{"true", "", "web", false},
		{"false", api, "web", false},
	} {
		env := m.env(clientIdentity)
		env[config.EnvIngressMode] = tc.ingress
		client := startProxy(t, unreachable, netip.AddrPort{}, env, nil)
		waitReady(t, client)
		_, out, _ := client.Addrs()
		for _, h2 := range []bool{false, true} {
			req, _ := http.NewRequest("GET", "http://"+web+"/", nil)
			if tc.override != "" {
				req.Header.Set("L5d-Dst-Override", tc.override)
			}
			resp, body := do(t, clientTo(out, h2), req)
			if resp.StatusCode != 200 || body != tc.want {
				t.Errorf("ingress=%s override=%q h2=%v: %d %q, want %q", tc.ingress, tc.override, h2, resp.StatusCode, body, tc.want)
			}
		}
		if tc.wantAPIID {
			cm := scrape(t, client)
			if !hasLine(cm, "request_total{", `authority="`+api+`"`, `server_id="`+apiIdentity+`"`) {
				t.Errorf("the overridden requests did not go over mesh TLS to %s:\n%s", apiIdentity, grepLines(cm, "request_total"))
			}
		}
	}
}
