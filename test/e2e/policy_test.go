package e2e

import (
	"fmt"
	"testing"
)

// TestAuthorizationPolicyAdmitsOneServiceAccount meshes a front end in a namespace whose
// default inbound policy is deny, with two clients under the ServiceAccounts allowed and
// other. Under deny alone both are refused (403) while the front end's readiness probe
// still passes (probe routes are authorized). Once a Server for the front end's http port
// and an AuthorizationPolicy requiring a MeshTLSAuthentication of allowed apply, allowed
// gets only 200s and other only 403s, and the front end's proxy counts both decisions.
func TestAuthorizationPolicyAdmitsOneServiceAccount(t *testing.T) {
	s := need(t)
	const ns = "e2e-authz"
	s.Namespace(t, ns, map[string]string{
		"linkerd.io/inject":                        "enabled",
		"config.linkerd.io/default-inbound-policy": "deny",
	})
	// The clients request /api/items, not /ready: /ready is the front end's probe path,
	// which every client may reach whatever the policy.
	app := []demoWorkload{
		{NS: ns, Name: "web", Image: "demo-web", Env: map[string]string{
			"CATALOG_ADDR": svcAddr(ns, "catalog"), "RATINGS_ADDR": svcAddr(ns, "ratings")}},
		// The catalog admits any meshed client (its pods' own default policy).
		{NS: ns, Name: "catalog", Image: "demo-catalog", PodAnnotations: map[string]string{
			"config.linkerd.io/default-inbound-policy": "all-authenticated"}},
	}
	for _, sa := range []string{"allowed", "other"} {
		app = append(app, demoWorkload{NS: ns, Name: sa, Image: "demo-traffic",
			Env: map[string]string{"TARGET": "http://web." + ns + ".svc.cluster.local:8080", "RATE": "10",
				"REQUEST_PATH": "/api/items"},
			// The test reads the clients' counts through the API server.
			PodAnnotations: map[string]string{"config.linkerd.io/default-inbound-policy": "all-unauthenticated"}})
	}
	for _, w := range app {
		s.Apply(t, w.YAML())
	}
	web := s.podOf(t, ns, "web") // ready: its probe route is authorized under deny
	allowed, other := s.podOf(t, ns, "allowed"), s.podOf(t, ns, "other")
	s.podOf(t, ns, "catalog")

	for _, c := range []string{allowed, other} {
		s.waitTrafficStatus(t, ns, c, "403") // past the clients' start-up
		d := s.trafficWindow(t, ns, c, 10)
		if d.ByStatus["403"] != d.Sent {
			t.Fatalf("under the deny default, %s got %v, want only 403s", c, d.ByStatus)
		}
	}

	s.Apply(t, fmt.Sprintf(`apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-http, namespace: %[1]s}
spec:
  podSelector:
    matchLabels: {app: web}
  port: http
  proxyProtocol: HTTP/1
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: allowed-clients, namespace: %[1]s}
spec:
  identityRefs:
  - {kind: ServiceAccount, name: allowed}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-allowed, namespace: %[1]s}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: allowed-clients}
`, ns))

	s.waitTrafficStatus(t, ns, allowed, "200") // the policy is in force
	dAllowed := s.trafficWindow(t, ns, allowed, 30)
	dOther := s.trafficWindow(t, ns, other, 30)
	if dAllowed.ByStatus["200"] != dAllowed.Sent {
		t.Errorf("with the policy in force, allowed got %v, want only 200s", dAllowed.ByStatus)
	}
	if dOther.ByStatus["403"] != dOther.Sent {
		t.Errorf("with the policy in force, other got %v, want only 403s", dOther.ByStatus)
	}

	m, err := s.ProxyMetrics(ns, web)
	if err != nil {
		t.Fatal(err)
	}
	server := []string{`srv_kind="server"`, `srv_name="web-http"`}
	if n := metricSum(m, "inbound_http_authz_allow_total", append(server,
		`authz_kind="authorizationpolicy"`, `authz_name="web-allowed"`)...); n < float64(dAllowed.Sent) {
		t.Errorf("web's proxy counts %v requests allowed by web-allowed, want at least %d:\n%s", n, dAllowed.Sent, grepLines(m, "authz"))
	}
	if n := metricSum(m, "inbound_http_authz_deny_total", server...); n < float64(dOther.Sent) {
		t.Errorf("web's proxy counts %v requests denied on web-http, want at least %d:\n%s", n, dOther.Sent, grepLines(m, "authz"))
	}
	otherID := `client_id="` + identity(ns, "other") + `"`
	if n := metricSum(m, "response_total", `direction="inbound"`, otherID, `status_code="403"`); n < float64(dOther.Sent) {
		t.Errorf("web's proxy counts %v inbound 403 responses to %s, want at least %d:\n%s", n, otherID, dOther.Sent, grepLines(m, "response_total{"))
	}
}
