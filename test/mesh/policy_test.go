package mesh

import (
	"net/netip"
	"strings"
	"testing"
)

// TestMeshedPodsMutualTLSAndPolicy: a meshed client reaches a meshed server by Service
// name over mTLS (the server's proxy sees the client's identity); then a
// MeshTLSAuthentication naming only the client's ServiceAccount admits it and refuses
// another meshed ServiceAccount and an unmeshed pod.
func TestMeshedPodsMutualTLSAndPolicy(t *testing.T) {
	w := newWorld(t)
	server := w.pod(t, "web", "web", true)
	serveApp(t, server)
	authority := w.service(t, "web")
	client := w.pod(t, "client", "client", true)
	other := w.pod(t, "other", "other", true)
	plain := w.pod(t, "plain", "plain", false)
	target := "http://" + netip.AddrPortFrom(server.IPv4, 8080).String() + "/"

	waitFor(t, "the client to reach web by name", func() bool { return podGet(client, target, authority) == 200 })
	clientID := "client." + w.appNS + ".serviceaccount.identity." + w.cp.ns + "." + trustDomain
	metrics := podBody(t, server, "http://127.0.0.1:4191/metrics")
	if !strings.Contains(metrics, `tls="true",client_id="`+clientID+`"`) {
		t.Fatalf("the server's proxy does not show the client's identity:\n%s", grep(metrics, "request_total"))
	}

	w.c.Apply(t, w.appNS, `apiVersion: policy.linkerd.io/v1beta1
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: web-clients}
spec:
  identityRefs: [{kind: ServiceAccount, name: client}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-authz}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web-clients}]
`)
	waitFor(t, "another ServiceAccount to be refused", func() bool { return podGet(other, target, authority) == 403 })
	if got := podGet(client, target, authority); got != 200 {
		t.Fatalf("the named ServiceAccount got %d, want 200", got)
	}
	if got := podGet(plain, target, ""); got == 200 {
		t.Fatalf("an unmeshed pod got through")
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
