package inbound_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/l5d-go/l5d/policy/inbound"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
)

// rateLimitSummary renders the rate limit of a Server's protocol (Detect, HTTP/1 or
// HTTP/2), "" without one.
func rateLimitSummary(s *pb.Server) string {
	p := s.GetProtocol()
	rl := p.GetDetect().GetHttpLocalRateLimit()
	if rl == nil {
		rl = p.GetHttp1().GetLocalRateLimit()
	}
	if rl == nil {
		rl = p.GetHttp2().GetLocalRateLimit()
	}
	if rl == nil {
		return ""
	}
	r := rl.GetMetadata().GetResource()
	out := fmt.Sprintf("%s/%s/%s total=%d identity=%d", r.GetGroup(), r.GetKind(), r.GetName(),
		rl.GetTotal().GetRequestsPerSecond(), rl.GetIdentity().GetRequestsPerSecond())
	for _, o := range rl.GetOverrides() {
		var ids []string
		for _, id := range o.GetClients().GetIdentities() {
			ids = append(ids, id.GetName())
		}
		out += fmt.Sprintf(" override=%d:%s", o.GetLimit().GetRequestsPerSecond(), strings.Join(ids, ","))
	}
	return out
}

// TestHTTPLocalRateLimitPolicy: the policy targeting a Server is served with the Server's
// protocol (detected and declared HTTP/1), overrides name ServiceAccount identities, the
// oldest of two policies applies, and deleting it removes the limit.
func TestHTTPLocalRateLimitPolicy(t *testing.T) {
	e := start(t, inbound.AllUnauthenticated)
	ns := e.c.Namespace(t)
	e.pod(t, ns, "web-0", nil)
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
  accessPolicy: all-unauthenticated
`)
	w := e.watch(t, ns, "web-0", 8080)
	w.until("the Server", func(s *pb.Server) bool { return s.Labels["name"] == "web-http" && rateLimitSummary(s) == "" })
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: web-rl}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  total: {requestsPerSecond: 100}
  identity: {requestsPerSecond: 20}
  overrides:
  - requestsPerSecond: 25
    clientRefs:
    - {kind: ServiceAccount, name: special}
    - {kind: ServiceAccount, namespace: other, name: batch}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: elsewhere}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: another}
  total: {requestsPerSecond: 1}
`)
	sa := func(name, ns string) string {
		return name + "." + ns + ".serviceaccount.identity.linkerd.cluster.local"
	}
	want := "policy.linkerd.io/HTTPLocalRateLimitPolicy/web-rl total=100 identity=20 override=25:" + sa("special", ns) + "," + sa("batch", "other")
	s := w.until("the rate limit on the detecting Server", func(s *pb.Server) bool { return rateLimitSummary(s) == want })
	if s.GetProtocol().GetDetect() == nil {
		t.Fatalf("protocol: %s", prototext.Format(s.GetProtocol()))
	}
	// A second policy for the same Server does not replace the first.
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: z-newer}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  total: {requestsPerSecond: 7}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
  proxyProtocol: HTTP/1
  accessPolicy: all-unauthenticated
`)
	w.until("the rate limit on the HTTP/1 Server", func(s *pb.Server) bool {
		return s.GetProtocol().GetHttp1() != nil && rateLimitSummary(s) == want
	})
	if err := e.c.Dynamic().Resource(rateLimits()).Namespace(ns).Delete(t.Context(), "web-rl", deleteOptions()); err != nil {
		t.Fatal(err)
	}
	w.until("the remaining policy", func(s *pb.Server) bool {
		return rateLimitSummary(s) == "policy.linkerd.io/HTTPLocalRateLimitPolicy/z-newer total=7 identity=0"
	})
	if err := e.c.Dynamic().Resource(rateLimits()).Namespace(ns).Delete(t.Context(), "z-newer", deleteOptions()); err != nil {
		t.Fatal(err)
	}
	w.until("no rate limit", func(s *pb.Server) bool { return s.GetProtocol().GetHttp1() != nil && rateLimitSummary(s) == "" })
}
