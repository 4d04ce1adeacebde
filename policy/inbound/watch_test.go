package inbound_test

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/l5d-go/l5d/policy/inbound"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
)

// watcher receives a WatchPort stream.
type watcher struct {
	t      *testing.T
	stream interface{ Recv() (*pb.Server, error) }
}

func (e *env) watch(t *testing.T, ns, pod string, port uint32) *watcher {
	t.Helper()
	s, err := e.client.WatchPort(t.Context(), &pb.PortSpec{Workload: ns + ":" + pod, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	return &watcher{t: t, stream: s}
}

// next is the next update, which must satisfy ok: any update in between (one an
// unrelated change caused) fails the test.
func (w *watcher) next(what string, ok func(*pb.Server) bool) *pb.Server {
	w.t.Helper()
	s, err := w.stream.Recv()
	if err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
	if !ok(s) {
		w.t.Fatalf("%s: unexpected update %v", what, s)
	}
	return s
}

func authzNames(s *pb.Server) string {
	var names []string
	for _, a := range s.Authorizations {
		names = append(names, a.Labels["kind"]+"/"+a.Labels["name"])
	}
	return strings.Join(names, ",")
}

func TestWatchResendsOnRelevantChangesOnly(t *testing.T) {
	e := start(t, inbound.AllUnauthenticated)
	ns := e.c.Namespace(t)
	other := e.c.Namespace(t)
	e.probedPod(t, ns, "web-0", nil)
	w := e.watch(t, ns, "web-0", 8080)
	w.next("cluster default", func(s *pb.Server) bool { return s.Labels["name"] == "all-unauthenticated" })

	unrelated := func() {
		t.Helper()
		e.c.Apply(t, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg-"+randomSuffix()+"}\ndata: {a: b}\n")
		e.c.Apply(t, other, `apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: elsewhere-`+randomSuffix()+`}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8080
  accessPolicy: deny
`)
		e.pod(t, other, "other-"+randomSuffix(), nil)
		patch(t, e, "", "namespaces", other, `{"metadata":{"annotations":{"config.linkerd.io/default-inbound-policy":"deny","x":"`+randomSuffix()+`"}}}`)
		patch(t, e, ns, "pods", "web-0", `{"metadata":{"annotations":{"unrelated":"`+randomSuffix()+`"}}}`)
	}

	unrelated()
	patch(t, e, "", "namespaces", ns, `{"metadata":{"annotations":{"config.linkerd.io/default-inbound-policy":"cluster-authenticated"}}}`)
	w.next("namespace annotation", func(s *pb.Server) bool {
		return s.Labels["name"] == "cluster-authenticated" && authzNames(s) == "default/cluster-authenticated"
	})

	unrelated()
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {tier: front}}
  port: http
  proxyProtocol: HTTP/1
  accessPolicy: all-authenticated
`)
	// A Server that selects no pod of this workload changes nothing: the next update is
	// the label change that makes it select the pod.
	unrelated()
	patch(t, e, ns, "pods", "web-0", `{"metadata":{"labels":{"tier":"front"}}}`)
	w.next("pod labels select the v1beta3 Server with its accessPolicy", func(s *pb.Server) bool {
		return s.Labels["name"] == "web-http" && s.Protocol.GetHttp1() != nil && authzNames(s) == "default/all-authenticated"
	})

	unrelated()
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: web-public}
spec:
  server: {name: web-http}
  client: {unauthenticated: true}
`)
	w.next("ServerAuthorization", func(s *pb.Server) bool {
		return authzNames(s) == "serverauthorization/web-public,default/all-authenticated"
	})

	unrelated()
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-ns}
spec:
  targetRef: {kind: Namespace, name: `+ns+`}
  requiredAuthenticationRefs: [{kind: ServiceAccount, name: client}]
`)
	w.next("AuthorizationPolicy", func(s *pb.Server) bool {
		return authzNames(s) == "serverauthorization/web-public,authorizationpolicy/web-ns,default/all-authenticated"
	})

	unrelated()
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {tier: front}}
  port: http
  proxyProtocol: HTTP/1
  accessPolicy: deny
`)
	w.next("accessPolicy deny", func(s *pb.Server) bool {
		return authzNames(s) == "serverauthorization/web-public,authorizationpolicy/web-ns"
	})

	unrelated()
	patch(t, e, ns, "pods", "web-0", `{"metadata":{"labels":{"tier":null}}}`)
	w.next("label removed: back to the namespace default", func(s *pb.Server) bool {
		return s.Labels["name"] == "cluster-authenticated"
	})
}

func TestServerVersions(t *testing.T) {
	e := start(t, inbound.AllUnauthenticated)
	ns := e.c.Namespace(t)
	e.pod(t, ns, "web-0", nil)
	// A Server of external workloads selects no pod.
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: vms}
spec:
  externalWorkloadSelector: {matchLabels: {app: web}}
  port: 8080
`)
	// A v1beta1 Server reads back at v1beta3 with the default accessPolicy (deny).
	objs := e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta1
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8080
`)
	if objs[0].GetName() != "web-http" {
		t.Fatal(objs)
	}
	var s *pb.Server
	e.poll(t, "the v1beta1 Server denies", func() bool {
		s = e.getPort(t, ns, "web-0", 8080)
		return s.Labels["name"] == "web-http" && len(s.Authorizations) == 0
	}, func() string { return s.String() })
	for _, bad := range []string{
		"spec: {port: 8080}",
		"spec: {port: 8080, podSelector: {}, externalWorkloadSelector: {}}",
		"spec: {port: 8080, podSelector: {}, accessPolicy: allow-everyone}",
	} {
		if _, err := e.c.ApplyYAML(t.Context(), ns, "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: bad}\n"+bad+"\n"); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func patch(t *testing.T, e *env, ns, resource, name, body string) {
	t.Helper()
	var err error
	switch resource {
	case "namespaces":
		_, err = e.c.Client().CoreV1().Namespaces().Patch(t.Context(), name, types.MergePatchType, []byte(body), metav1.PatchOptions{})
	case "pods":
		_, err = e.c.Client().CoreV1().Pods(ns).Patch(t.Context(), name, types.MergePatchType, []byte(body), metav1.PatchOptions{})
	}
	if err != nil {
		t.Fatalf("patch %s %s: %v", resource, name, err)
	}
}

var suffixes atomic.Int64

// randomSuffix makes names unique within the test binary.
func randomSuffix() string { return strconv.FormatInt(suffixes.Add(1), 10) }

// An authentication change reaches the watches whose policy requires it, also from
// another namespace and through a namespace-wide AuthorizationPolicy, including when the
// authentication is created after the policy that names it.
func TestWatchFollowsAuthenticationsAcrossNamespaces(t *testing.T) {
	e := start(t, inbound.AllUnauthenticated)
	ns := e.c.Namespace(t)
	shared := e.c.Namespace(t)
	e.pod(t, ns, "web-0", nil)
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
metadata: {name: from-shared}
spec:
  targetRef: {kind: Namespace, name: `+ns+`}
  requiredAuthenticationRefs: [{kind: MeshTLSAuthentication, name: clients, namespace: `+shared+`}]
`)
	w := e.watch(t, ns, "web-0", 8080)
	w.until("the Server denies while the authentication is missing", func(s *pb.Server) bool {
		return s.Labels["name"] == "web-http" && len(s.Authorizations) == 0
	})
	meshTLS := func(identity string) string {
		return "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: clients}\nspec: {identities: [" + identity + "]}\n"
	}
	e.c.Apply(t, shared, meshTLS("a.example"))
	w.until("the authentication, once created, authorizes", func(s *pb.Server) bool {
		return authzNames(s) == "authorizationpolicy/from-shared" && strings.Contains(s.String(), "a.example")
	})
	e.c.Apply(t, shared, meshTLS("b.example"))
	w.until("the changed authentication", func(s *pb.Server) bool {
		return strings.Contains(s.String(), "b.example") && !strings.Contains(s.String(), "a.example")
	})
}
