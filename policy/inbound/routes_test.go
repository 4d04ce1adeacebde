package inbound_test

import (
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/policy/inbound"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
)

// until receives updates until one satisfies ok.
func (w *watcher) until(what string, ok func(*pb.Server) bool) *pb.Server {
	w.t.Helper()
	for {
		s, err := w.stream.Recv()
		if err != nil {
			w.t.Fatalf("%s: %v", what, err)
		}
		if ok(s) {
			return s
		}
	}
}

func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func grpcRouteSummaries(s *pb.Server) string {
	var out []string
	for _, r := range s.GetProtocol().GetGrpc().GetRoutes() {
		name := r.GetMetadata().GetDefault()
		if res := r.GetMetadata().GetResource(); res != nil {
			name = res.Group + "/" + res.Kind + "/" + res.Name
		}
		var matches []string
		for _, rule := range r.Rules {
			for _, m := range rule.Matches {
				matches = append(matches, m.GetRpc().GetService()+"/"+m.GetRpc().GetMethod())
			}
		}
		out = append(out, name+": "+strings.Join(matches, ",")+" | "+strings.Join(authzStrings(r.Authorizations), "; "))
	}
	return strings.Join(out, "\n")
}

func TestInboundRoutesAndRouteAuthorizations(t *testing.T) {
	e := start(t, inbound.AllUnauthenticated)
	ns := e.c.Namespace(t)
	e.probedPod(t, ns, "web-0", nil)
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
  proxyProtocol: HTTP/1
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: admin}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  requiredAuthenticationRefs: [{kind: ServiceAccount, name: admin}]
`)
	w := e.watch(t, ns, "web-0", 8080)
	sa := func(name string) string { return name + "." + ns + ".serviceaccount.identity.linkerd.cluster.local" }
	w.until("Server without routes: default and probe routes", func(s *pb.Server) bool {
		return routeSummaries(s) == "default: /* | \nprobe: GET =/live,GET =/ready | "+probeAuthz && authzNames(s) == "authorizationpolicy/admin"
	})

	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: books-get}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web-http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /books}, method: GET}]
`)
	w.next("an attached HTTPRoute replaces the default and probe routes", func(s *pb.Server) bool {
		return routeSummaries(s) == "policy.linkerd.io/HTTPRoute/books-get: GET /books* | " && authzNames(s) == "authorizationpolicy/admin"
	})

	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: books-get-readers}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: books-get}
  requiredAuthenticationRefs: [{kind: ServiceAccount, name: reader}]
`)
	w.next("a route-level AuthorizationPolicy is on its route only", func(s *pb.Server) bool {
		return routeSummaries(s) == "policy.linkerd.io/HTTPRoute/books-get: GET /books* | authorizationpolicy/books-get-readers 0.0.0.0/0,::/0 ids["+sa("reader")+"]" &&
			authzNames(s) == "authorizationpolicy/admin"
	})

	// A Gateway API HTTPRoute on the same Server, with a policy targeting it by its group;
	// a policy naming it with the other group applies to nothing.
	e.c.Apply(t, ns, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: books-post}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web-http}]
  rules:
  - matches: [{path: {type: Exact, value: /books}, method: POST}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: books-post-writers}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: books-post}
  requiredAuthenticationRefs: [{kind: ServiceAccount, name: writer}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: wrong-group}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: books-post}
  requiredAuthenticationRefs: [{kind: ServiceAccount, name: nobody}]
`)
	want := "policy.linkerd.io/HTTPRoute/books-get: GET /books* | authorizationpolicy/books-get-readers 0.0.0.0/0,::/0 ids[" + sa("reader") + "]\n" +
		"gateway.networking.k8s.io/HTTPRoute/books-post: POST =/books | authorizationpolicy/books-post-writers 0.0.0.0/0,::/0 ids[" + sa("writer") + "]"
	// Routes created in the same second tie on age and are ordered by group.
	s := w.until("the Gateway API HTTPRoute joins", func(s *pb.Server) bool { return sortedLines(routeSummaries(s)) == sortedLines(want) })
	if authzNames(s) != "authorizationpolicy/admin" {
		t.Errorf("server authorizations %s", authzNames(s))
	}
	// An HTTPRoute whose parent is another Server does not attach.
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: elsewhere}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: other}]
  rules: [{matches: [{path: {value: /}}]}]
`)
	for _, name := range []string{"books-get"} {
		if err := e.c.Dynamic().Resource(policyHTTPRoutes()).Namespace(ns).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w.next("a deleted route is gone (the other Server's route never attached)", func(s *pb.Server) bool {
		return routeSummaries(s) == "gateway.networking.k8s.io/HTTPRoute/books-post: POST =/books | authorizationpolicy/books-post-writers 0.0.0.0/0,::/0 ids["+sa("writer")+"]"
	})
	if err := e.c.Dynamic().Resource(inbound.GatewayHTTPRoutes).Namespace(ns).Delete(t.Context(), "books-post", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.next("without routes the probe routes are back", func(s *pb.Server) bool {
		return routeSummaries(s) == "default: /* | \nprobe: GET =/live,GET =/ready | "+probeAuthz
	})
}

func TestInboundGRPCRoutes(t *testing.T) {
	e := start(t, inbound.AllUnauthenticated)
	ns := e.c.Namespace(t)
	e.pod(t, ns, "web-0", nil)
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-grpc}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8080
  proxyProtocol: gRPC
`)
	w := e.watch(t, ns, "web-0", 8080)
	w.until("gRPC Server default route", func(s *pb.Server) bool { return grpcRouteSummaries(s) == "default:  | " })
	e.c.Apply(t, ns, `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: books-get}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web-grpc}]
  rules:
  - matches: [{method: {service: books.Books, method: Get}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: grpc-readers}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: GRPCRoute, name: books-get}
  requiredAuthenticationRefs: [{kind: ServiceAccount, name: reader}]
`)
	w.until("GRPCRoute with its authorization", func(s *pb.Server) bool {
		return grpcRouteSummaries(s) == "gateway.networking.k8s.io/GRPCRoute/books-get: books.Books/Get | authorizationpolicy/grpc-readers 0.0.0.0/0,::/0 ids[reader."+ns+".serviceaccount.identity.linkerd.cluster.local]"
	})
}
