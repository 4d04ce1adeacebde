package outpolicy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
)

func dstBackend(path string) *pb.Backend {
	return &pb.Backend{Kind: &pb.Backend_Balancer{Balancer: &pb.Backend_BalanceP2C{Discovery: &pb.Backend_EndpointDiscovery{
		Kind: &pb.Backend_EndpointDiscovery_Dst{Dst: &pb.Backend_EndpointDiscovery_DestinationGet{Path: path}}}}}}
}

func resourceMeta(name string) *pbmeta.Metadata {
	return &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{Group: "policy.linkerd.io", Kind: "HTTPRoute", Name: name}}}
}

func prefix(p string) *httproute.HttpRouteMatch {
	return &httproute.HttpRouteMatch{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: p}}}
}

func first(path string) *pb.HttpRoute_Distribution {
	return &pb.HttpRoute_Distribution{Kind: &pb.HttpRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.HttpRoute_Distribution_FirstAvailable{
		Backends: []*pb.HttpRoute_RouteBackend{{Backend: dstBackend(path)}}}}}
}

func detect(routes ...*pb.HttpRoute) *pb.OutboundPolicy {
	return &pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{
		Http1: &pb.ProxyProtocol_Http1{Routes: routes}, Http2: &pb.ProxyProtocol_Http2{Routes: routes}}}}}
}

// defaultRoute is the route the controller sends for a Service without HTTPRoutes.
func defaultRoute() *pb.HttpRoute {
	return &pb.HttpRoute{Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "default"}},
		Rules: []*pb.HttpRoute_Rule{{Matches: []*httproute.HttpRouteMatch{prefix("/")}, Backends: first("web.ns.svc.cluster.local:80")}}}
}

func request(method, target string, hdr ...string) *http.Request {
	r := &http.Request{Method: method, Host: "web.ns.svc.cluster.local", Header: http.Header{}}
	r.URL, _ = url.Parse(target)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

func TestDefaultRouteIsTrivial(t *testing.T) {
	p, err := FromProto(detect(defaultRoute()))
	if err != nil || !p.Trivial() {
		t.Fatalf("default route: trivial=%v err=%v, want a trivial policy", p.Trivial(), err)
	}
	withTimeout := defaultRoute()
	withTimeout.Rules[0].Timeouts = &httproute.Timeouts{Request: durationpb.New(time.Second)}
	if p, err := FromProto(detect(withTimeout)); err != nil || p.Trivial() || p.Rules()[0].Timeout != time.Second {
		t.Fatalf("default route with a timeout: %+v %v, want it applied", p, err)
	}
	for _, m := range []*pb.OutboundPolicy{nil, {}, {Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: &pb.ProxyProtocol_Opaque{}}}}} {
		if p, err := FromProto(m); p != nil || err != nil {
			t.Errorf("FromProto(%v) = %v, %v; want no HTTP policy", m, p, err)
		}
	}
}

func TestMatchPrecedence(t *testing.T) {
	rt := &pb.HttpRoute{Metadata: resourceMeta("r"), Rules: []*pb.HttpRoute_Rule{
		{Matches: []*httproute.HttpRouteMatch{prefix("/")}, Backends: first("all.ns.svc.cluster.local:80")},
		{Matches: []*httproute.HttpRouteMatch{prefix("/api")}, Backends: first("api.ns.svc.cluster.local:80")},
		{Matches: []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: "/api"}},
			Headers: []*httproute.HeaderMatch{{Name: "x-canary", Value: &httproute.HeaderMatch_Exact{Exact: []byte("1")}}}}},
			Backends: first("canary.ns.svc.cluster.local:80")},
		{Matches: []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Exact{Exact: "/api/login"}},
			Method: &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Registered_{Registered: httptypes.HttpMethod_POST}}}},
			Backends: first("login.ns.svc.cluster.local:80")},
		{Matches: []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: "/q"}},
			QueryParams: []*httproute.QueryParamMatch{{Name: "v", Value: &httproute.QueryParamMatch_Regex{Regex: "[0-9]+"}}}}},
			Backends: first("query.ns.svc.cluster.local:80")},
	}}
	p, err := FromProto(detect(rt))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r    *http.Request
		want string
	}{
		{request("GET", "/"), "all.ns.svc.cluster.local:80"},
		{request("GET", "/apis"), "all.ns.svc.cluster.local:80"}, // prefixes match whole segments
		{request("GET", "/api/x"), "api.ns.svc.cluster.local:80"},
		{request("GET", "/api/x", "X-Canary", "1"), "canary.ns.svc.cluster.local:80"},
		{request("GET", "/api/login"), "api.ns.svc.cluster.local:80"},
		{request("POST", "/api/login", "X-Canary", "1"), "login.ns.svc.cluster.local:80"},
		{request("GET", "/q?v=12"), "query.ns.svc.cluster.local:80"},
		{request("GET", "/q?v=x"), "all.ns.svc.cluster.local:80"},
	} {
		rule, ok := p.Match(tc.r)
		if !ok {
			t.Errorf("%s %s: no rule", tc.r.Method, tc.r.URL)
			continue
		}
		if got := rule.pick().authority; got != tc.want {
			t.Errorf("%s %s %v: backend %s, want %s", tc.r.Method, tc.r.URL, tc.r.Header, got, tc.want)
		}
	}
}

// split is a policy whose one rule splits requests a:b between Services a and b.
func split(a, b uint32) *pb.OutboundPolicy {
	return detect(&pb.HttpRoute{Metadata: resourceMeta("split"), Rules: []*pb.HttpRoute_Rule{{
		Backends: &pb.HttpRoute_Distribution{Kind: &pb.HttpRoute_Distribution_RandomAvailable_{RandomAvailable: &pb.HttpRoute_Distribution_RandomAvailable{
			Backends: []*pb.HttpRoute_WeightedRouteBackend{
				{Weight: a, Backend: &pb.HttpRoute_RouteBackend{Backend: dstBackend("a.ns.svc.cluster.local:80")}},
				{Weight: b, Backend: &pb.HttpRoute_RouteBackend{Backend: dstBackend("b.ns.svc.cluster.local:80")}},
			}}}}}}})
}

func TestWeightedPick(t *testing.T) {
	count := func(p *Policy) map[string]int {
		rule, ok := p.Match(request("GET", "/"))
		if !ok {
			t.Fatal("a rule without matches must match every request")
		}
		seen := map[string]int{}
		for range 1000 {
			if b := rule.pick(); b != nil {
				seen[b.authority]++
			} else {
				seen["none"]++
			}
		}
		return seen
	}
	for _, tc := range []struct {
		a, b      uint32
		onlyA     bool
		onlyB     bool
		noneAtAll bool
	}{{100, 0, true, false, false}, {0, 100, false, true, false}, {0, 0, false, false, true}} {
		p, err := FromProto(split(tc.a, tc.b))
		if err != nil {
			t.Fatal(err)
		}
		seen := count(p)
		switch {
		case tc.onlyA && seen["a.ns.svc.cluster.local:80"] != 1000,
			tc.onlyB && seen["b.ns.svc.cluster.local:80"] != 1000,
			tc.noneAtAll && seen["none"] != 1000:
			t.Errorf("weights %d/%d: picks %v", tc.a, tc.b, seen)
		}
	}
	p, _ := FromProto(split(1, 1))
	if seen := count(p); seen["a.ns.svc.cluster.local:80"] == 0 || seen["b.ns.svc.cluster.local:80"] == 0 {
		t.Errorf("weights 1/1: picks %v, want both", seen)
	}
}

func TestRetryConditions(t *testing.T) {
	rule := &pb.HttpRoute_Rule{Timeouts: &httproute.Timeouts{Request: durationpb.New(2 * time.Second)},
		Retry: &pb.HttpRoute_Retry{MaxRetries: 3, Timeout: durationpb.New(time.Second), Conditions: &pb.HttpRoute_Retry_Conditions{
			StatusRanges: []*pb.HttpRoute_Retry_Conditions_StatusRange{{Start: 502, End: 504}, {Start: 429}}}}}
	p, err := FromProto(detect(&pb.HttpRoute{Metadata: resourceMeta("r"), Rules: []*pb.HttpRoute_Rule{rule}}))
	if err != nil {
		t.Fatal(err)
	}
	r := p.Rules()[0]
	if r.Retries != 3 || r.Timeout != time.Second {
		t.Fatalf("retries %d, attempt timeout %v; want 3 and the retry's 1s", r.Retries, r.Timeout)
	}
	for status, want := range map[int]bool{500: false, 502: true, 504: true, 429: true, 200: false} {
		if got := r.retryOn(status, ""); got != want {
			t.Errorf("status %d retried: %v, want %v", status, got, want)
		}
	}
	g, err := FromProto(&pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Grpc_{Grpc: &pb.ProxyProtocol_Grpc{Routes: []*pb.GrpcRoute{{
		Rules: []*pb.GrpcRoute_Rule{{Retry: &pb.GrpcRoute_Retry{MaxRetries: 1, Conditions: &pb.GrpcRoute_Retry_Conditions{Unavailable: true}}}}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if gr := g.Rules()[0]; !gr.retryOn(200, "14") || gr.retryOn(200, "13") || gr.retryOn(200, "0") {
		t.Error("gRPC retry conditions: want only UNAVAILABLE (14) retried")
	}
}

func TestFiltersApply(t *testing.T) {
	f, err := httpFilters([]*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_RequestHeaderModifier{RequestHeaderModifier: &httproute.RequestHeaderModifier{
		Set:    &httptypes.Headers{Headers: []*httptypes.Headers_Header{{Name: "x-set", Value: []byte("s")}}},
		Add:    &httptypes.Headers{Headers: []*httptypes.Headers_Header{{Name: "x-add", Value: []byte("a2")}}},
		Remove: []string{"x-drop"},
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Set": {"old"}, "X-Add": {"a1"}, "X-Drop": {"d"}}
	if fail := f.apply(h); fail != nil {
		t.Fatalf("no failure injector, got %v", fail)
	}
	if h.Get("X-Set") != "s" || strings.Join(h["X-Add"], ",") != "a1,a2" || h["X-Drop"] != nil {
		t.Fatalf("headers after the modifier: %v", h)
	}
	inj, err := httpFilters([]*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_FailureInjector{FailureInjector: &httproute.HttpFailureInjector{
		Status: 503, Message: "down", Ratio: &httproute.Ratio{Numerator: 1, Denominator: 1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if fail := inj.apply(http.Header{}); fail == nil || fail.status != 503 || fail.message != "down" {
		t.Fatalf("failure injector 1/1: %+v", fail)
	}
	never, _ := httpFilters([]*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_FailureInjector{FailureInjector: &httproute.HttpFailureInjector{
		Status: 503, Ratio: &httproute.Ratio{Numerator: 0, Denominator: 1}}}}})
	for range 100 {
		if fail := never.apply(http.Header{}); fail != nil {
			t.Fatal("failure injector 0/1 fired")
		}
	}
}

// TestInvalidPoliciesAreRefused: answers the proxy cannot apply are errors naming the
// problem, never a crash.
func TestInvalidPoliciesAreRefused(t *testing.T) {
	withRule := func(rule *pb.HttpRoute_Rule) *pb.OutboundPolicy {
		return detect(&pb.HttpRoute{Metadata: resourceMeta("bad"), Rules: []*pb.HttpRoute_Rule{rule}})
	}
	for name, tc := range map[string]struct {
		m    *pb.OutboundPolicy
		want string
	}{
		"regex": {withRule(&pb.HttpRoute_Rule{Matches: []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Regex{Regex: "("}}}}}), "path regex"},
		"header name": {withRule(&pb.HttpRoute_Rule{Filters: []*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_RequestHeaderModifier{RequestHeaderModifier: &httproute.RequestHeaderModifier{
			Set: &httptypes.Headers{Headers: []*httptypes.Headers_Header{{Name: "bad name", Value: []byte("v")}}}}}}}}), "not a header name"},
		"header value": {withRule(&pb.HttpRoute_Rule{Filters: []*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_RequestHeaderModifier{RequestHeaderModifier: &httproute.RequestHeaderModifier{
			Add: &httptypes.Headers{Headers: []*httptypes.Headers_Header{{Name: "x", Value: []byte("a\r\nb: c")}}}}}}}}), "line break"},
		"status": {withRule(&pb.HttpRoute_Rule{Filters: []*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_FailureInjector{FailureInjector: &httproute.HttpFailureInjector{Status: 42}}}}}), "not an HTTP status"},
		"ratio": {withRule(&pb.HttpRoute_Rule{Filters: []*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_FailureInjector{FailureInjector: &httproute.HttpFailureInjector{
			Status: 500, Ratio: &httproute.Ratio{Numerator: 2, Denominator: 1}}}}}}), "not a fraction"},
		"dst path": {withRule(&pb.HttpRoute_Rule{Backends: first("no port")}), "not a host:port"},
		"retry range": {withRule(&pb.HttpRoute_Rule{Retry: &pb.HttpRoute_Retry{MaxRetries: 1, Conditions: &pb.HttpRoute_Retry_Conditions{
			StatusRanges: []*pb.HttpRoute_Retry_Conditions_StatusRange{{Start: 599, End: 500}}}}}), "retry status range"},
		"response header name": {withRule(&pb.HttpRoute_Rule{Filters: []*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_ResponseHeaderModifier{ResponseHeaderModifier: &httproute.ResponseHeaderModifier{
			Remove: []string{"bad:name"}}}}}}), "response header modifier"},
		"accrual max failures": {&pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Http1_{Http1: &pb.ProxyProtocol_Http1{
			FailureAccrual: &pb.FailureAccrual{Kind: &pb.FailureAccrual_ConsecutiveFailures_{ConsecutiveFailures: &pb.FailureAccrual_ConsecutiveFailures{}}}}}}}, "max_failures 0"},
		"accrual backoff": {&pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Http1_{Http1: &pb.ProxyProtocol_Http1{
			FailureAccrual: &pb.FailureAccrual{Kind: &pb.FailureAccrual_ConsecutiveFailures_{ConsecutiveFailures: &pb.FailureAccrual_ConsecutiveFailures{
				MaxFailures: 3, Backoff: &pb.ExponentialBackoff{MinBackoff: durationpb.New(time.Minute), MaxBackoff: durationpb.New(time.Second)}}}}}}}}, "below the minimum"},
		"empty filter": {withRule(&pb.HttpRoute_Rule{Filters: []*pb.HttpRoute_Filter{{}}}), "unknown kind"},
		"grpc code": {&pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Grpc_{Grpc: &pb.ProxyProtocol_Grpc{Routes: []*pb.GrpcRoute{{
			Rules: []*pb.GrpcRoute_Rule{{Filters: []*pb.GrpcRoute_Filter{{Kind: &pb.GrpcRoute_Filter_FailureInjector{FailureInjector: &grpcroute.GrpcFailureInjector{Code: 99}}}}}}}}}}}}, "gRPC code"},
	} {
		p, err := FromProto(tc.m)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: policy %v, error %v; want an error about %q", name, p, err, tc.want)
		}
	}
}

func TestRedirectLocation(t *testing.T) {
	full, pfx := "/login", "/v2"
	for _, tc := range []struct {
		rd   *httproute.RequestRedirect
		r    *http.Request
		want string
	}{
		{&httproute.RequestRedirect{}, request("GET", "/a?b=c"), "http://web.ns.svc.cluster.local/a?b=c"},
		{&httproute.RequestRedirect{Host: "other.example", Port: 8080, Status: 301}, request("GET", "/a"), "http://other.example:8080/a"},
		{&httproute.RequestRedirect{Scheme: &httptypes.Scheme{Type: &httptypes.Scheme_Registered_{Registered: httptypes.Scheme_HTTPS}}},
			request("GET", "/a"), "https://web.ns.svc.cluster.local/a"},
		{&httproute.RequestRedirect{Path: &httproute.PathModifier{Replace: &httproute.PathModifier_Full{Full: full}}}, request("GET", "/a/b"), "http://web.ns.svc.cluster.local/login"},
		{&httproute.RequestRedirect{Path: &httproute.PathModifier{Replace: &httproute.PathModifier_Prefix{Prefix: pfx}}}, request("GET", "/v1/items?x=1"), "http://web.ns.svc.cluster.local/v2/items?x=1"},
		{&httproute.RequestRedirect{Path: &httproute.PathModifier{Replace: &httproute.PathModifier_Prefix{Prefix: pfx}}}, request("GET", "/v1"), "http://web.ns.svc.cluster.local/v2"},
	} {
		rd, err := compileRedirect(tc.rd)
		if err != nil {
			t.Fatal(err)
		}
		rd.prefixes = []string{"/v1"}
		if got := rd.location(tc.r); got != tc.want {
			t.Errorf("redirect %v of %s: %s, want %s", tc.rd, tc.r.URL, got, tc.want)
		}
	}
	for _, bad := range []*httproute.RequestRedirect{{Status: 200}, {Port: 70000}, {Host: "a b"},
		{Path: &httproute.PathModifier{Replace: &httproute.PathModifier_Full{Full: "relative"}}}} {
		if _, err := compileRedirect(bad); err == nil {
			t.Errorf("redirect %v accepted", bad)
		}
	}
}
