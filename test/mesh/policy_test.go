package mesh

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/test/netns"
)

// TestMeshedPodsMutualTLSAndPolicy: a meshed client reaches a meshed server by Service
// name over mTLS (the server's proxy sees the client's identity); then a
// MeshTLSAuthentication naming only the client's ServiceAccount admits it and refuses
// another meshed ServiceAccount and an unmeshed pod.
func TestMeshedPodsMutualTLSAndPolicy(t *testing.T) {
	w := newWorld(t, 24*time.Hour)
	server := w.pod(t, "web", "web", true, nil)
	serveApp(t, server)
	authority := w.service(t, "web")
	client := w.pod(t, "client", "client", true, nil)
	other := w.pod(t, "other", "other", true, nil)
	plain := w.pod(t, "plain", "plain", false, nil)
	target := "http://" + netip.AddrPortFrom(server.IPv4, 8080).String() + "/"

	// Requests wait for discovery (slow on a loaded machine) and go over mTLS; the first
	// ones may fail while the pods and their Service are still being set up.
	clientID := "client." + w.appNS + ".serviceaccount.identity." + w.cp.ns + "." + trustDomain
	eventually.True(t, "the server's proxy to see the client's identity", func() bool {
		return podGet(client, target, authority) == 200 &&
			strings.Contains(podBody(t, server, "http://127.0.0.1:4191/metrics"), `tls="true",client_id="`+clientID+`"`)
	})

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
	// The three objects reach the caches one by one: wait until the policy admits the
	// named ServiceAccount, then it must refuse the other one.
	eventually.True(t, "another ServiceAccount to be refused", func() bool { return podGet(other, target, authority) == 403 })
	eventually.True(t, "the named ServiceAccount to be admitted", func() bool { return podGet(client, target, authority) == 200 })
	if got := podGet(other, target, authority); got != 403 {
		t.Fatalf("another ServiceAccount got %d, want 403", got)
	}
	if got := podGet(plain, target, ""); got == 200 {
		t.Fatalf("an unmeshed pod got through")
	}
}

// TestDefaultPolicyFromPodAnnotation: under all-authenticated an unmeshed client is
// refused and a meshed one admitted; a pod annotated all-unauthenticated admits both.
func TestDefaultPolicyFromPodAnnotation(t *testing.T) {
	w := newWorld(t, 24*time.Hour)
	strict := w.pod(t, "strict", "strict", true, map[string]string{"config.linkerd.io/default-inbound-policy": "all-authenticated"})
	open := w.pod(t, "open", "open", true, map[string]string{"config.linkerd.io/default-inbound-policy": "all-unauthenticated"})
	serveApp(t, strict)
	serveApp(t, open)
	strictName, openName := w.service(t, "strict"), w.service(t, "open")
	client := w.pod(t, "client", "client", true, nil)
	plain := w.pod(t, "plain", "plain", false, nil)
	strictURL := "http://" + netip.AddrPortFrom(strict.IPv4, 8080).String() + "/"
	openURL := "http://" + netip.AddrPortFrom(open.IPv4, 8080).String() + "/"
	eventually.True(t, "the unmeshed pod to be refused by all-authenticated", func() bool { return podGet(plain, strictURL, "") == 403 })
	eventually.True(t, "the meshed client to be admitted", func() bool { return podGet(client, strictURL, strictName) == 200 })
	eventually.True(t, "the unmeshed pod to be admitted by all-unauthenticated", func() bool { return podGet(plain, openURL, "") == 200 })
	if got := podGet(client, openURL, openName); got != 200 {
		t.Fatalf("meshed client to the open pod: %d", got)
	}
}

// TestTrafficSurvivesControlPlaneOutageAndRenewal: certificates last 6s, so proxies renew
// them while requests flow; then the whole control plane is killed and traffic between
// already-discovered pods continues with no failed request, and recovers after it returns.
func TestTrafficSurvivesControlPlaneOutageAndRenewal(t *testing.T) {
	w := newWorld(t, 6*time.Second)
	server := w.pod(t, "web", "web", true, nil)
	serveApp(t, server)
	authority := w.service(t, "web")
	client := w.pod(t, "client", "client", true, nil)
	target := "http://" + netip.AddrPortFrom(server.IPv4, 8080).String() + "/"
	eventually.True(t, "the client to reach web", func() bool { return podGet(client, target, authority) == 200 })

	refreshes := func(p *netns.Pod) int {
		for _, l := range strings.Split(podBody(t, p, "http://127.0.0.1:4191/metrics"), "\n") {
			if v, ok := strings.CutPrefix(l, "identity_cert_refresh_count "); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				return n
			}
		}
		return 0
	}
	// Renewal mid-traffic: requests keep succeeding until both proxies have renewed.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; refreshes(client) < 2 || refreshes(server) < 2; i++ {
		if got := podGet(client, target, authority); got != 200 {
			t.Fatalf("request %d during renewal: %d", i, got)
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificates not renewed: client %d, server %d", refreshes(client), refreshes(server))
		}
		time.Sleep(20 * time.Millisecond) // request pacing, not synchronisation
	}

	w.cp.stop()
	for i := range 100 {
		if got := podGet(client, target, authority); got != 200 {
			t.Fatalf("request %d with the control plane down: %d", i, got)
		}
	}
	w.cp.serve()
	eventually.True(t, "traffic after the control plane returns", func() bool { return podGet(client, target, authority) == 200 })
}
