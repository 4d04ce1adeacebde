package app

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

const svcV2 = "web-v2.ns.svc.cluster.local:80"

// policyApp answers with its name and the X-Route header it got; /slow answers only
// once the request is cancelled; /flaky fails every other request with 500.
func policyApp(t *testing.T, name string) netip.AddrPort {
	t.Helper()
	var flaky atomic.Int64
	addr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/slow":
			<-r.Context().Done()
			return
		case "/flaky": // every other request fails
			if flaky.Add(1)%2 == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
		}
		fmt.Fprintf(w, "%s%s", name, r.Header.Get("X-Route"))
	}))
	return addr
}

// weighted is one backend Service of a route rule.
type weighted struct {
	authority string
	weight    uint32
}

// routeRule builds an HTTPRoute rule as the policy controller sends it: matching a path
// prefix, splitting across Services.
func routeRule(prefix string, timeout time.Duration, filters []*pb.HttpRoute_Filter, backends ...weighted) *pb.HttpRoute_Rule {
	var ws []*pb.HttpRoute_WeightedRouteBackend
	for _, b := range backends {
		ws = append(ws, &pb.HttpRoute_WeightedRouteBackend{Weight: b.weight, Backend: &pb.HttpRoute_RouteBackend{Backend: &pb.Backend{
			Kind: &pb.Backend_Balancer{Balancer: &pb.Backend_BalanceP2C{Discovery: &pb.Backend_EndpointDiscovery{
				Kind: &pb.Backend_EndpointDiscovery_Dst{Dst: &pb.Backend_EndpointDiscovery_DestinationGet{Path: b.authority}}}}}}}})
	}
	rule := &pb.HttpRoute_Rule{
		Matches:  []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: prefix}}}},
		Filters:  filters,
		Backends: &pb.HttpRoute_Distribution{Kind: &pb.HttpRoute_Distribution_RandomAvailable_{RandomAvailable: &pb.HttpRoute_Distribution_RandomAvailable{Backends: ws}}},
	}
	if timeout > 0 {
		rule.Timeouts = &httproute.Timeouts{Request: durationpb.New(timeout)}
	}
	return rule
}

// httpRoutePolicy is a Detect policy whose HTTP routes are one HTTPRoute with rules.
func httpRoutePolicy(rules ...*pb.HttpRoute_Rule) *pb.OutboundPolicy {
	route := &pb.HttpRoute{Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{
		Group: "gateway.networking.k8s.io", Kind: "HTTPRoute", Name: "web-split", Namespace: "ns"}}}, Rules: rules}
	return &pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{
		Timeout: durationpb.New(10 * time.Second),
		Http1:   &pb.ProxyProtocol_Http1{Routes: []*pb.HttpRoute{route}},
		Http2:   &pb.ProxyProtocol_Http2{Routes: []*pb.HttpRoute{route}},
	}}}}
}

// policyProxy starts the apps of web and web-v2 and an outbound proxy whose control
// plane has both Services and the scripted outbound policies.
func policyProxy(t *testing.T) (*scriptedcp.Destination, *scriptedcp.OutboundPolicies, netip.AddrPort) {
	t.Helper()
	d, cp := startDestination(t)
	d.Set(svc, scriptedcp.Endpoint{Addr: policyApp(t, "web")})
	d.Set(svcV2, scriptedcp.Endpoint{Addr: policyApp(t, "v2")})
	op, p := policyProxyOver(t, cp)
	_, out, _ := p.Addrs()
	return d, op, out
}

// policyProxyOver starts scripted outbound policies and an outbound proxy using them and
// the destination service at cp.
func policyProxyOver(t *testing.T, cp string) (*scriptedcp.OutboundPolicies, *Proxy) {
	t.Helper()
	op := scriptedcp.NewOutboundPolicies()
	opAddr, err := op.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Stop)
	p := startProxy(t, unreachable, netip.AddrPort{}, map[string]string{
		config.EnvDestinationAddr: cp,
		config.EnvPolicyAddr:      opAddr,
		config.EnvPolicyWorkload:  `{"ns":"ns","pod":"client-0"}`,
	}, nil)
	return op, p
}

// answers sends n requests to url and counts the bodies (failures as "error: ...").
func answers(c *http.Client, url string, n int) map[string]int {
	seen := map[string]int{}
	for range n {
		body, err := fetch(c, url)
		if err != nil {
			body = "error: " + err.Error()
		}
		seen[body]++
	}
	return seen
}

// TestOutboundPolicyTrafficSplit: an HTTPRoute's weights decide which Service gets the
// requests sent to web: 100/0 all to web, 0/100 all to web-v2, 50/50 to both; over the
// HTTP/1 fast path's connections and over HTTP/2.
func TestOutboundPolicyTrafficSplit(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			_, op, out := policyProxy(t)
			op.Set(svc, httpRoutePolicy(routeRule("/", 0, nil, weighted{svc, 100}, weighted{svcV2, 0})))
			c := clientTo(out, h2)
			url := "http://" + svc + "/"
			if got := answers(c, url, 20); got["web"] != 20 {
				t.Fatalf("weights 100/0: answers %v, want all from web", got)
			}
			op.Set(svc, httpRoutePolicy(routeRule("/", 0, nil, weighted{svc, 0}, weighted{svcV2, 100})))
			eventually.True(t, "web-v2 to answer", func() bool { b, _ := fetch(c, url); return b == "v2" })
			if got := answers(c, url, 20); got["v2"] != 20 {
				t.Fatalf("weights 0/100: answers %v, want all from web-v2", got)
			}
			op.Set(svc, httpRoutePolicy(routeRule("/", 0, nil, weighted{svc, 50}, weighted{svcV2, 50})))
			seen := map[string]int{}
			eventually.True(t, "both Services to answer under 50/50", func() bool {
				for k, v := range answers(c, url, 10) {
					seen[k] += v
				}
				return seen["web"] > 0 && seen["v2"] > 0
			})
			for k := range seen {
				if k != "web" && k != "v2" {
					t.Fatalf("weights 50/50: unexpected answer %q (all: %v)", k, seen)
				}
			}
		})
	}
}

// TestOutboundPolicyRouteRules: a rule's request header modifier reaches the backend and
// its response header modifier the client, a
// redirect filter answers 301 with the rewritten Location, a
// rule timeout turns a slow backend into 504, a request matching no rule gets 404, a
// backend weighted alone that fails (the controller's failure injector for a missing
// Service) answers 500, and a ServiceProfile with routes takes precedence over the
// policy.
func TestOutboundPolicyRouteRules(t *testing.T) {
	d, op, out := policyProxy(t)
	setRoute := []*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_RequestHeaderModifier{RequestHeaderModifier: &httproute.RequestHeaderModifier{
		Set: &httptypes.Headers{Headers: []*httptypes.Headers_Header{{Name: "x-route", Value: []byte(":api")}}}}}},
		{Kind: &pb.HttpRoute_Filter_ResponseHeaderModifier{ResponseHeaderModifier: &httproute.ResponseHeaderModifier{
			Add: &httptypes.Headers{Headers: []*httptypes.Headers_Header{{Name: "x-served-by", Value: []byte("route-api")}}}}}}}
	missing := routeRule("/missing", 0, nil)
	missing.Backends = &pb.HttpRoute_Distribution{Kind: &pb.HttpRoute_Distribution_RandomAvailable_{RandomAvailable: &pb.HttpRoute_Distribution_RandomAvailable{
		Backends: []*pb.HttpRoute_WeightedRouteBackend{{Weight: 1, Backend: &pb.HttpRoute_RouteBackend{Backend: &pb.Backend{},
			Filters: []*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_FailureInjector{FailureInjector: &httproute.HttpFailureInjector{
				Status: 500, Message: "Service ns/gone not found"}}}}}}}}}}
	moved := routeRule("/old", 0, []*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_Redirect{Redirect: &httproute.RequestRedirect{
		Status: 301, Path: &httproute.PathModifier{Replace: &httproute.PathModifier_Prefix{Prefix: "/new"}}}}}}, weighted{svc, 1})
	op.Set(svc, httpRoutePolicy(
		moved,
		routeRule("/api", 0, setRoute, weighted{svcV2, 1}),
		routeRule("/slow", 200*time.Millisecond, nil, weighted{svc, 1}),
		missing,
	))
	for _, h2 := range []bool{false, true} {
		c := clientTo(out, h2)
		status := func(path string) (int, string, string) {
			t.Helper()
			resp, body := get(t, c, "http://"+svc+path)
			return resp.StatusCode, body, resp.Header.Get("L5d-Proxy-Error")
		}
		if code, body, _ := status("/api/items"); code != http.StatusOK || body != "v2:api" {
			t.Errorf("h2=%v /api/items: %d %q, want 200 from web-v2 with the header the route sets", h2, code, body)
		}
		if resp, _ := get(t, c, "http://"+svc+"/api/items"); resp.Header.Get("X-Served-By") != "route-api" {
			t.Errorf("h2=%v /api/items: response header x-served-by %q, want the route's response modifier", h2, resp.Header.Get("X-Served-By"))
		}
		if code, _, reason := status("/slow"); code != http.StatusGatewayTimeout || reason != "request timed out" {
			t.Errorf("h2=%v /slow: %d %q, want 504 after the rule's timeout", h2, code, reason)
		}
		if code, _, reason := status("/other"); code != http.StatusNotFound || reason != "no route found for request" {
			t.Errorf("h2=%v /other: %d %q, want 404 no route", h2, code, reason)
		}
		noFollow := &http.Client{Transport: c.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if resp, _ := get(t, noFollow, "http://"+svc+"/old/page?x=1"); resp.StatusCode != http.StatusMovedPermanently ||
			resp.Header.Get("Location") != "http://web.ns.svc.cluster.local/new/page?x=1" {
			t.Errorf("h2=%v /old/page: %d Location %q, want 301 to /new/page", h2, resp.StatusCode, resp.Header.Get("Location"))
		}
		if code, _, reason := status("/missing"); code != http.StatusInternalServerError || reason != "Service ns/gone not found" {
			t.Errorf("h2=%v /missing: %d %q, want 500 from the failing backend", h2, code, reason)
		}
	}
	// A ServiceProfile with routes for web takes precedence: /other reaches web itself.
	d.SetProfile(svc, &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local.",
		Routes: []*destination.Route{profileRoute("GET /", httptypes.HttpMethod_GET, "/.*")}})
	c := clientTo(out, false)
	eventually.True(t, "the ServiceProfile to take over", func() bool { b, _ := fetch(c, "http://"+svc+"/other"); return b == "web" })
	if got := answers(c, "http://"+svc+"/api/items", 5); got["web"] != 5 {
		t.Fatalf("with a ServiceProfile: answers %v, want all from web without the route's header", got)
	}
}

// TestOutboundPolicyAbsent: a target the policy controller has no policy for routes as
// without a policy controller.
func TestOutboundPolicyAbsent(t *testing.T) {
	_, _, out := policyProxy(t)
	if got := answers(clientTo(out, false), "http://"+svc+"/", 5); got["web"] != 5 {
		t.Fatalf("answers %v, want all from web", got)
	}
}

// TestOutboundPolicyRouteRetries: a rule whose retry policy covers 5xx answers every
// request of a backend failing every other one with success (bodies included), over
// HTTP/1 and HTTP/2; the same backend on a rule without retries shows its failures.
func TestOutboundPolicyRouteRetries(t *testing.T) {
	_, op, out := policyProxy(t)
	retried := routeRule("/flaky", 0, nil, weighted{svcV2, 1})
	retried.Retry = &pb.HttpRoute_Retry{MaxRetries: 2, Conditions: &pb.HttpRoute_Retry_Conditions{
		StatusRanges: []*pb.HttpRoute_Retry_Conditions_StatusRange{{Start: 500, End: 599}}}}
	op.Set(svc, httpRoutePolicy(retried))
	for _, h2 := range []bool{false, true} {
		c := clientTo(out, h2)
		for i := range 10 {
			resp, err := c.Post("http://"+svc+"/flaky", "text/plain", strings.NewReader(fmt.Sprint("body-", i)))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "v2" {
				t.Fatalf("h2=%v request %d on the retried rule: %d %q, want 200 from web-v2", h2, i, resp.StatusCode, body)
			}
		}
	}
	op.Set(svc, httpRoutePolicy(routeRule("/flaky", 0, nil, weighted{svcV2, 1})))
	c := clientTo(out, false)
	eventually.True(t, "the rule without retries to show failures", func() bool {
		resp, err := c.Get("http://" + svc + "/flaky")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusInternalServerError
	})
}

// TestOutboundPolicyGRPCRoutes: under a gRPC policy a call to the matched service method
// goes to the route's backend Service, and a call matching no route gets grpc-status 5
// (NOT_FOUND) in an HTTP 200 answer.
func TestOutboundPolicyGRPCRoutes(t *testing.T) {
	_, op, out := policyProxy(t)
	backend := &pb.GrpcRoute_Distribution{Kind: &pb.GrpcRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.GrpcRoute_Distribution_FirstAvailable{
		Backends: []*pb.GrpcRoute_RouteBackend{{Backend: &pb.Backend{Kind: &pb.Backend_Balancer{Balancer: &pb.Backend_BalanceP2C{Discovery: &pb.Backend_EndpointDiscovery{
			Kind: &pb.Backend_EndpointDiscovery_Dst{Dst: &pb.Backend_EndpointDiscovery_DestinationGet{Path: svcV2}}}}}}}}}}}
	op.Set(svc, &pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Grpc_{Grpc: &pb.ProxyProtocol_Grpc{Routes: []*pb.GrpcRoute{{
		Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{Group: "gateway.networking.k8s.io", Kind: "GRPCRoute", Name: "hello"}}},
		Rules: []*pb.GrpcRoute_Rule{{
			Matches:  []*grpcroute.GrpcRouteMatch{{Rpc: &grpcroute.GrpcRpcMatch{Service: "demo.Greeter", Method: "Hello"}}},
			Backends: backend,
		}},
	}}}}}})
	c := clientTo(out, true)
	call := func(method string) (*http.Response, string) { t.Helper(); return callGreeter(t, c, method) }
	if resp, body := call("Hello"); resp.StatusCode != http.StatusOK || body != "v2" {
		t.Fatalf("demo.Greeter/Hello: %d %q, want the route's backend web-v2", resp.StatusCode, body)
	}
	if resp, _ := call("Bye"); resp.StatusCode != http.StatusOK || resp.Header.Get("Grpc-Status") != "5" {
		t.Fatalf("demo.Greeter/Bye: %d grpc-status %q, want 200 with grpc-status 5", resp.StatusCode, resp.Header.Get("Grpc-Status"))
	}
}

// callGreeter calls demo.Greeter/method on svc through c (an empty gRPC message) and
// returns the response, its body read.
func callGreeter(t *testing.T, c *http.Client, method string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+svc+"/demo.Greeter/"+method, strings.NewReader("\x00\x00\x00\x00\x00"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// BenchmarkOutboundPolicyHTTP1 compares an outbound proxy without a policy controller,
// with the controller's default route (which keeps the HTTP/1 fast path), and with a
// 50/50 split between two Services (general handler, per-request rule match and pick).
func BenchmarkOutboundPolicyHTTP1(b *testing.B) {
	defaultRoute := &pb.HttpRoute{Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "default"}},
		Rules: []*pb.HttpRoute_Rule{routeRule("/", 0, nil, weighted{svc, 1})}}
	for _, c := range []struct {
		name   string
		policy *pb.OutboundPolicy
	}{
		{"no-controller", nil},
		{"default-route", &pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{
			Http1: &pb.ProxyProtocol_Http1{Routes: []*pb.HttpRoute{defaultRoute}}}}}}},
		{"split", httpRoutePolicy(routeRule("/", 0, nil, weighted{svc, 50}, weighted{svcV2, 50}))},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := scriptedcp.NewDestination()
			cp, err := d.Start("127.0.0.1:0", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Stop()
			app := benchApp(b)
			d.Set(svc, scriptedcp.Endpoint{Addr: app})
			d.Set(svcV2, scriptedcp.Endpoint{Addr: app})
			env := map[string]string{config.EnvDestinationAddr: cp}
			if c.policy != nil {
				op := scriptedcp.NewOutboundPolicies()
				opAddr, err := op.Start("127.0.0.1:0", nil)
				if err != nil {
					b.Fatal(err)
				}
				defer op.Stop()
				op.Set(svc, c.policy)
				env[config.EnvPolicyAddr], env[config.EnvPolicyWorkload] = opAddr, "ns:client"
			}
			p := startProxy(b, unreachable, netip.AddrPort{}, env, nil)
			_, out, _ := p.Addrs()
			cl := clientTo(out, false)
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := cl.Get("http://" + svc + "/")
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}

// TestOutboundPolicyFailureAccrual: under consecutive-failure accrual (2 failures, an
// hour's penalty) a backend Service endpoint that answers only 500 is taken out of
// balancing after its second failure: once a healthy endpoint joins it, every request
// succeeds.
func TestOutboundPolicyFailureAccrual(t *testing.T) {
	d, op, out := policyProxy(t)
	var badHits atomic.Int64
	bad, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	d.Set(svcV2, scriptedcp.Endpoint{Addr: bad})
	pol := httpRoutePolicy(routeRule("/", 0, nil, weighted{svcV2, 1}))
	pol.GetProtocol().GetDetect().GetHttp1().FailureAccrual = &pb.FailureAccrual{Kind: &pb.FailureAccrual_ConsecutiveFailures_{
		ConsecutiveFailures: &pb.FailureAccrual_ConsecutiveFailures{MaxFailures: 2, Backoff: &pb.ExponentialBackoff{
			MinBackoff: durationpb.New(time.Hour), MaxBackoff: durationpb.New(time.Hour)}}}}
	op.Set(svc, pol)
	c := clientTo(out, false)
	eventually.True(t, "the failing endpoint to fail twice", func() bool {
		resp, _ := get(t, c, "http://"+svc+"/")
		return resp.StatusCode == http.StatusInternalServerError && badHits.Load() >= 2
	})
	d.Set(svcV2, scriptedcp.Endpoint{Addr: bad}, scriptedcp.Endpoint{Addr: namedApp(t, "v2")})
	eventually.True(t, "the healthy endpoint to answer", func() bool { b, _ := fetch(c, "http://"+svc+"/"); return b == "v2" })
	hits := badHits.Load()
	for i := range 40 {
		if resp, body := get(t, c, "http://"+svc+"/"); resp.StatusCode != http.StatusOK || body != "v2" {
			t.Fatalf("request %d: %d %q, want every request on the healthy endpoint", i, resp.StatusCode, body)
		}
	}
	if n := badHits.Load() - hits; n != 0 {
		t.Fatalf("the failing endpoint got %d more requests during its penalty", n)
	}
}
