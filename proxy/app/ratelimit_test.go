package app

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// rateLimited is a Server admitting everyone whose detected HTTP traffic is limited by
// the given HTTPLocalRateLimitPolicy.
func rateLimited(rl *inbound.HttpLocalRateLimit) *inbound.Server {
	if rl != nil {
		rl.Metadata = routeMeta("HTTPLocalRateLimitPolicy", "web-rl")
	}
	return &inbound.Server{
		Labels:         map[string]string{"group": "policy.linkerd.io", "kind": "server", "name": "web-http"},
		Authorizations: []*inbound.Authz{unauthenticated()},
		Protocol: &inbound.ProxyProtocol{Kind: &inbound.ProxyProtocol_Detect_{Detect: &inbound.ProxyProtocol_Detect{
			HttpLocalRateLimit: rl}}},
	}
}

// TestInboundRateLimit runs a rate-limited server proxy and meshed and unmeshed clients:
// past its identity's limit a client gets 429, a client an override names gets its own
// (here generous) limit, past the total limit everyone gets 429, and each refusal is
// counted in inbound_http_local_ratelimit_total with Linkerd's labels.
//
// The limits are 1 request per second; a client sending requests one after another sees
// a 429 as soon as two of them fall within a second, which the test waits for (with a
// deadline) rather than assuming any speed.
func TestInboundRateLimit(t *testing.T) {
	m := startMeshCP(t)
	pol := &scriptedPolicy{changed: make(chan struct{})}
	pol.srv = rateLimited(&inbound.HttpLocalRateLimit{
		Identity: &inbound.HttpLocalRateLimit_Limit{RequestsPerSecond: 1},
		Overrides: []*inbound.HttpLocalRateLimit_Override{{
			Limit:   &inbound.HttpLocalRateLimit_Limit{RequestsPerSecond: 1_000_000},
			Clients: &inbound.HttpLocalRateLimit_Override_ClientIdentities{Identities: []*inbound.Identity{{Name: clientIdentity}}},
		}},
	})
	env := m.env(serverIdentity)
	for k, v := range startPolicyService(t, m, pol) {
		env[k] = v
	}
	env[config.EnvInboundDefaultPolicy] = "deny"
	server := startProxy(t, netip.AddrPort{}, namedApp(t, "app"), env, nil)
	client := startProxy(t, unreachable, netip.AddrPort{}, m.env(clientIdentity), nil)
	other := startProxy(t, unreachable, netip.AddrPort{}, m.env(otherIdentity), nil)
	for _, p := range []*Proxy{server, client, other} {
		waitReady(t, p)
	}
	serverIn, _, _ := server.Addrs()
	m.dst.Set(svc, scriptedcp.Endpoint{Addr: serverIn, Identity: serverIdentity, H2: true})
	get := func(p *Proxy) (int, string) {
		t.Helper()
		c, url := clientTo(serverIn, false), "http://"+serverIn.String()+"/"
		if p != nil {
			_, out, _ := p.Addrs()
			c, url = clientTo(out, false), "http://"+svc+"/"
		}
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("l5d-proxy-error")
	}
	eventually.True(t, "the policy to be in force", func() bool { s, _ := get(client); return s == http.StatusOK })

	var reason string
	eventually.True(t, "a 429 for the identity past its limit", func() bool {
		s, r := get(other)
		reason = r
		return s == http.StatusTooManyRequests
	})
	if reason != "per-identity rate limit exceeded: 1rps" {
		t.Errorf("l5d-proxy-error %q", reason)
	}
	// The override's client is not held to the identity limit.
	for i := range 50 {
		if s, _ := get(client); s != http.StatusOK {
			t.Fatalf("overridden client, request %d: %d", i, s)
		}
	}
	sm := scrape(t, server)
	if !hasLine(sm, "inbound_http_local_ratelimit_total{", `target_port="`, `srv_kind="server",srv_name="web-http",ratelimit_group="policy.linkerd.io",ratelimit_kind="HTTPLocalRateLimitPolicy",ratelimit_name="web-rl",ratelimit_scope="identity"`, `tls="true",client_id="`+otherIdentity+`"`) {
		t.Fatalf("rate limit metric missing:\n%s", grepLines(sm, "ratelimit"))
	}
	if !hasLine(sm, "response_total{", `direction="inbound"`, `client_id="`+otherIdentity+`"`, `status_code="429"`) {
		t.Fatalf("429 responses not counted:\n%s", grepLines(sm, "response_total"))
	}

	// A total limit holds every client, the override's too, and unmeshed ones.
	pol.set(rateLimited(&inbound.HttpLocalRateLimit{Total: &inbound.HttpLocalRateLimit_Limit{RequestsPerSecond: 1}}))
	eventually.True(t, "a 429 past the total limit", func() bool {
		s, r := get(client)
		reason = r
		return s == http.StatusTooManyRequests
	})
	if reason != "total rate limit exceeded: 1rps" {
		t.Errorf("l5d-proxy-error %q", reason)
	}
	eventually.True(t, "a 429 for an unmeshed client", func() bool { s, _ := get(nil); return s == http.StatusTooManyRequests })
	if sm := scrape(t, server); !hasLine(sm, "inbound_http_local_ratelimit_total{", `ratelimit_scope="total"`, `client_id="`+clientIdentity+`"`) {
		t.Fatalf("total rate limit metric missing:\n%s", grepLines(sm, "ratelimit"))
	}

	// Without the policy nobody is limited.
	pol.set(rateLimited(nil))
	eventually.True(t, "the limit to be lifted", func() bool {
		for range 20 {
			if s, _ := get(other); s != http.StatusOK {
				return false
			}
		}
		return true
	})
}
