package outbound_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/policy/outbound"
	"github.com/l5d-go/l5d/policy/routes"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/test/kube"
)

var crdOnce sync.Once

// installRouteCRDs applies the policy.linkerd.io CRDs and the Gateway API HTTPRoute and
// GRPCRoute CRDs from the module cache (never copied into the repository).
func installRouteCRDs(t *testing.T, c *kube.Cluster) {
	t.Helper()
	crdOnce.Do(func() {
		policy, err := os.ReadFile("../../deploy/crds/policy.yaml")
		if err != nil {
			t.Fatal(err)
		}
		c.Apply(t, "", string(policy))
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
		if err != nil {
			t.Fatalf("locating sigs.k8s.io/gateway-api: %v", err)
		}
		dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
		for _, f := range []string{"gateway.networking.k8s.io_httproutes.yaml", "gateway.networking.k8s.io_grpcroutes.yaml",
			"gateway.networking.k8s.io_tcproutes.yaml", "gateway.networking.k8s.io_tlsroutes.yaml"} {
			data, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			c.Apply(t, "", string(data))
		}
		for _, n := range []string{"httproutes.policy.linkerd.io", "egressnetworks.policy.linkerd.io", "httproutes.gateway.networking.k8s.io", "grpcroutes.gateway.networking.k8s.io",
			"tcproutes.gateway.networking.k8s.io", "tlsroutes.gateway.networking.k8s.io"} {
			c.WaitCRD(t, n)
		}
	})
}

func http1Routes(p *pb.OutboundPolicy) []*pb.HttpRoute {
	return p.GetProtocol().GetDetect().GetHttp1().GetRoutes()
}

func hasRoute(name string) func(*pb.OutboundPolicy) bool {
	return func(p *pb.OutboundPolicy) bool {
		for _, r := range http1Routes(p) {
			if r.GetMetadata().GetResource().GetName() == name {
				return true
			}
		}
		return false
	}
}

func TestHTTPRouteWeightedBackends(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.service(t, ns, "web", nil)
	e.service(t, ns, "web-v2", nil)
	e.c.Apply(t, ns, `
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: canary}
spec:
  parentRefs: [{group: core, kind: Service, name: web, port: 80}]
  rules:
    - matches:
        - path: {type: PathPrefix, value: /api}
          headers: [{name: x-canary, value: "yes"}]
      backendRefs:
        - {name: web, port: 80, weight: 90}
        - {name: web-v2, port: 80, weight: 10}
        - {name: gone, port: 80, weight: 5}
`)
	p := e.get(t, authority("web."+ns+".svc.cluster.local:80"), hasRoute("canary"))
	rs := http1Routes(p)
	if len(rs) != 1 {
		t.Fatalf("routes = %v, want only the canary route (no default route once a route attaches)", rs)
	}
	if md := rs[0].GetMetadata().GetResource(); md.GetGroup() != "policy.linkerd.io" || md.GetKind() != "HTTPRoute" || md.GetNamespace() != ns {
		t.Errorf("route metadata = %v", md)
	}
	rule := rs[0].GetRules()[0]
	m := rule.GetMatches()[0]
	if m.GetPath().GetPrefix() != "/api" || m.GetHeaders()[0].GetName() != "x-canary" || string(m.GetHeaders()[0].GetExact()) != "yes" {
		t.Errorf("match = %v", m)
	}
	ws := rule.GetBackends().GetRandomAvailable().GetBackends()
	if len(ws) != 3 {
		t.Fatalf("backends = %v, want 3 weighted", ws)
	}
	for i, want := range []struct {
		weight uint32
		path   string
	}{{90, "web." + ns + ".svc.cluster.local:80"}, {10, "web-v2." + ns + ".svc.cluster.local:80"}} {
		b := ws[i].GetBackend().GetBackend()
		if ws[i].GetWeight() != want.weight || b.GetBalancer().GetDiscovery().GetDst().GetPath() != want.path || b.GetBalancer().GetPeakEwma() == nil {
			t.Errorf("backend %d = weight %d %v, want weight %d balancer over %s", i, ws[i].GetWeight(), b, want.weight, want.path)
		}
		if b.GetQueue().GetCapacity() != 100 || b.GetQueue().GetFailfastTimeout().AsDuration() != 3*time.Second {
			t.Errorf("backend %d queue = %v", i, b.GetQueue())
		}
	}
	missing := ws[2].GetBackend()
	fi := missing.GetFilters()[0].GetFailureInjector()
	if missing.GetBackend().GetBalancer() != nil || fi.GetStatus() != 500 || !strings.Contains(fi.GetMessage(), "not found") {
		t.Errorf("missing backend = %v, want a 500 failure injector", missing)
	}
	// The route is bound to port 80: traffic to another port keeps the default route.
	other := e.get(t, authority("web."+ns+".svc.cluster.local:8080"), isDetect)
	if http1Routes(other)[0].GetMetadata().GetDefault() == "" {
		t.Errorf("port 8080 routes = %v, want the default route", http1Routes(other))
	}
}

func TestGatewayHTTPRouteTimeoutsAndRetries(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.service(t, ns, "books", map[string]string{routes.AnnTimeoutIdle: "1m", routes.AnnRetryLimit: "9"})
	e.c.Apply(t, ns, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: books-get
  annotations:
    retry.linkerd.io/http: 5xx,gateway-error
    retry.linkerd.io/limit: "3"
    retry.linkerd.io/timeout: 300ms
spec:
  parentRefs: [{group: "", kind: Service, name: books, port: 80}]
  rules:
    - matches: [{path: {type: Exact, value: /books}, method: GET}]
      timeouts: {request: 5s, backendRequest: 2s}
      backendRefs: [{name: books, port: 80}]
`)
	p := e.get(t, authority("books."+ns+".svc.cluster.local:80"), hasRoute("books-get"))
	rule := http1Routes(p)[0].GetRules()[0]
	if g := http1Routes(p)[0].GetMetadata().GetResource().GetGroup(); g != "gateway.networking.k8s.io" {
		t.Errorf("route group = %q", g)
	}
	to := rule.GetTimeouts()
	if to.GetRequest().AsDuration() != 5*time.Second || to.GetResponse().AsDuration() != 2*time.Second || to.GetIdle().AsDuration() != time.Minute {
		t.Errorf("timeouts = %v, want request 5s, response 2s (backendRequest), idle 1m (Service annotation)", to)
	}
	r := rule.GetRetry()
	if r.GetMaxRetries() != 3 || r.GetTimeout().AsDuration() != 300*time.Millisecond || len(r.GetConditions().GetStatusRanges()) != 2 {
		t.Errorf("retry = %v, want the route's 3 retries of 5xx and 502-504 with 300ms tries", r)
	}
	if m := rule.GetMatches()[0]; m.GetPath().GetExact() != "/books" || m.GetMethod().GetRegistered().String() != "GET" {
		t.Errorf("match = %v", m)
	}
}

func TestServiceAnnotationsOnDefaultRoute(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.service(t, ns, "web", map[string]string{
		routes.AnnTimeoutRequest: "10s", routes.AnnRetryHTTP: "500-504", routes.AnnRetryLimit: "2",
		routes.AnnFailureAccrual: "consecutive", routes.AnnAccrualMaxFailures: "5", routes.AnnAccrualMinPenalty: "2s",
		routes.AnnAccrualMaxPenalty: "30s", routes.AnnAccrualJitterRatio: "0.25",
	})
	p := e.get(t, authority("web."+ns+".svc.cluster.local:80"), isDetect)
	rule := http1Routes(p)[0].GetRules()[0]
	if rule.GetTimeouts().GetRequest().AsDuration() != 10*time.Second || rule.GetRetry().GetMaxRetries() != 2 ||
		rule.GetRetry().GetConditions().GetStatusRanges()[0].GetEnd() != 504 {
		t.Errorf("default rule = %v, want the Service's timeout and retries", rule)
	}
	for _, fa := range []*pb.FailureAccrual{p.GetProtocol().GetDetect().GetHttp1().GetFailureAccrual(), p.GetProtocol().GetDetect().GetHttp2().GetFailureAccrual()} {
		c := fa.GetConsecutiveFailures()
		bo := c.GetBackoff()
		if c.GetMaxFailures() != 5 || bo.GetMinBackoff().AsDuration() != 2*time.Second || bo.GetMaxBackoff().AsDuration() != 30*time.Second || bo.GetJitterRatio() != 0.25 {
			t.Errorf("failure accrual = %v", fa)
		}
	}
}

func TestGRPCRoute(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.service(t, ns, "emoji", map[string]string{routes.AnnRetryGRPC: "unavailable", routes.AnnFailureAccrual: "consecutive"})
	e.c.Apply(t, ns, `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: list-all, annotations: {timeout.linkerd.io/request: 1s}}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
    - matches: [{method: {service: emojivoto.v1.EmojiService, method: ListAll}}]
      backendRefs: [{name: emoji, port: 80}]
`)
	p := e.get(t, authority("emoji."+ns+".svc.cluster.local:80"), func(p *pb.OutboundPolicy) bool { return p.GetProtocol().GetGrpc() != nil })
	g := p.GetProtocol().GetGrpc()
	if g.GetFailureAccrual().GetConsecutiveFailures().GetMaxFailures() != 7 {
		t.Errorf("grpc failure accrual = %v, want consecutive with 7 failures", g.GetFailureAccrual())
	}
	rule := g.GetRoutes()[0].GetRules()[0]
	if rpc := rule.GetMatches()[0].GetRpc(); rpc.GetService() != "emojivoto.v1.EmojiService" || rpc.GetMethod() != "ListAll" {
		t.Errorf("rpc match = %v", rpc)
	}
	if rule.GetTimeouts().GetRequest().AsDuration() != time.Second || !rule.GetRetry().GetConditions().GetUnavailable() || rule.GetRetry().GetMaxRetries() != 1 {
		t.Errorf("rule = %v, want 1s request timeout and a retry on unavailable", rule)
	}
}

func TestConsumerRoutesOverrideProducerRoutes(t *testing.T) {
	e := start(t)
	svcNS, clientNS := e.c.Namespace(t), e.c.Namespace(t)
	e.service(t, svcNS, "web", nil)
	e.c.Apply(t, svcNS, `
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: producer}
spec:
  parentRefs: [{group: core, kind: Service, name: web, port: 80}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
`)
	e.c.Apply(t, clientNS, `
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: consumer}
spec:
  parentRefs: [{group: core, kind: Service, name: web, namespace: `+svcNS+`, port: 80}]
  rules: [{matches: [{path: {value: /only}}]}]
`)
	a := "web." + svcNS + ".svc.cluster.local:80"
	e.get(t, &pb.TrafficSpec{SourceWorkload: clientNS + ":client", Target: &pb.TrafficSpec_Authority{Authority: a}}, hasRoute("consumer"))
	p := e.get(t, &pb.TrafficSpec{SourceWorkload: svcNS + ":other", Target: &pb.TrafficSpec_Authority{Authority: a}}, hasRoute("producer"))
	if len(http1Routes(p)) != 1 {
		t.Errorf("clients in the Service's namespace get %v, want only the producer route", http1Routes(p))
	}
}

func TestWatchFollowsRoutes(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.service(t, ns, "web", nil)
	e.service(t, ns, "web-v2", nil)
	spec := authority("web." + ns + ".svc.cluster.local:80")
	e.get(t, spec, isDetect)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, err := e.client.Watch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if first, err := w.Recv(); err != nil || http1Routes(first)[0].GetMetadata().GetDefault() == "" {
		t.Fatalf("first update = %v, %v; want the default route", first, err)
	}
	route := func(w2 int) string {
		return `
apiVersion: policy.linkerd.io/v1beta2
kind: HTTPRoute
metadata: {name: split}
spec:
  parentRefs: [{group: core, kind: Service, name: web, port: 80}]
  rules: [{backendRefs: [{name: web, port: 80, weight: 1}, {name: web-v2, port: 80, weight: ` + string(rune('0'+w2)) + `}]}]
`
	}
	weights := func(p *pb.OutboundPolicy) []uint32 {
		var out []uint32
		for _, b := range http1Routes(p)[0].GetRules()[0].GetBackends().GetRandomAvailable().GetBackends() {
			out = append(out, b.GetWeight())
		}
		return out
	}
	e.c.Apply(t, ns, route(1))
	next, err := w.Recv()
	if err != nil || !hasRoute("split")(next) || weights(next)[1] != 1 {
		t.Fatalf("update after creating the route = %v, %v", next, err)
	}
	e.c.Apply(t, ns, route(9))
	next, err = w.Recv()
	if err != nil || weights(next)[1] != 9 {
		t.Fatalf("update after reweighting = %v, %v; want web-v2 weight 9", next, err)
	}
	if err := e.c.Dynamic().Resource(outbound.RouteResources[0]).Namespace(ns).Delete(ctx, "split", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	next, err = w.Recv()
	if err != nil || http1Routes(next)[0].GetMetadata().GetDefault() == "" {
		t.Fatalf("update after deleting the route = %v, %v; want the default route back", next, err)
	}
}
