package routes

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/proto/gen/httproute"
)

func ptr[T any](v T) *T { return &v }

func TestHTTPMatches(t *testing.T) {
	got, err := HTTPMatches([]gatewayv1.HTTPRouteMatch{{
		Path:        &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchExact), Value: ptr("/books")},
		Headers:     []gatewayv1.HTTPHeaderMatch{{Name: "X-Canary", Value: "yes"}, {Type: ptr(gatewayv1.HeaderMatchRegularExpression), Name: "x-id", Value: "^a.*"}},
		QueryParams: []gatewayv1.HTTPQueryParamMatch{{Name: "page", Value: "2"}},
		Method:      ptr(gatewayv1.HTTPMethodPost),
	}, {
		Path: &gatewayv1.HTTPPathMatch{Value: ptr("/api")}, // type omitted: PathPrefix
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].GetPath().GetExact() != "/books" || got[1].GetPath().GetPrefix() != "/api" {
		t.Fatalf("paths = %v", got)
	}
	if h := got[0].GetHeaders(); len(h) != 2 || h[0].GetName() != "x-canary" || string(h[0].GetExact()) != "yes" || h[1].GetRegex() != "^a.*" {
		t.Errorf("headers = %v", h)
	}
	if q := got[0].GetQueryParams(); len(q) != 1 || q[0].GetExact() != "2" {
		t.Errorf("query = %v", q)
	}
	if got[0].GetMethod().GetRegistered().String() != "POST" {
		t.Errorf("method = %v", got[0].GetMethod())
	}
	all, err := HTTPMatches(nil)
	if err != nil || len(all) != 1 || all[0].GetPath().GetPrefix() != "/" {
		t.Errorf("no matches = %v, %v; want prefix /", all, err)
	}
}

func TestHTTPMatchErrors(t *testing.T) {
	for name, m := range map[string]gatewayv1.HTTPRouteMatch{
		"regex path":   {Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchRegularExpression), Value: ptr("(")}},
		"relative":     {Path: &gatewayv1.HTTPPathMatch{Value: ptr("books")}},
		"unknown type": {Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchType("Glob")), Value: ptr("/")}},
		"header regex": {Headers: []gatewayv1.HTTPHeaderMatch{{Type: ptr(gatewayv1.HeaderMatchRegularExpression), Name: "a", Value: "["}}},
		"method":       {Method: ptr(gatewayv1.HTTPMethod("GE T"))},
	} {
		if _, err := HTTPMatches([]gatewayv1.HTTPRouteMatch{m}); err == nil || !strings.Contains(err.Error(), "matches[0]") {
			t.Errorf("%s: error %v, want one naming matches[0]", name, err)
		}
	}
}

func TestGRPCMatches(t *testing.T) {
	got, err := GRPCMatches([]gatewayv1.GRPCRouteMatch{{
		Method:  &gatewayv1.GRPCMethodMatch{Service: ptr("emojivoto.v1.EmojiService"), Method: ptr("ListAll")},
		Headers: []gatewayv1.GRPCHeaderMatch{{Name: "x-user", Value: "bob"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r := got[0].GetRpc(); r.GetService() != "emojivoto.v1.EmojiService" || r.GetMethod() != "ListAll" || string(got[0].GetHeaders()[0].GetExact()) != "bob" {
		t.Errorf("match = %v", got[0])
	}
	if _, err := GRPCMatches([]gatewayv1.GRPCRouteMatch{{Method: &gatewayv1.GRPCMethodMatch{}}}); err == nil {
		t.Error("an empty method match was accepted")
	}
}

func TestHosts(t *testing.T) {
	got, err := Hosts([]gatewayv1.Hostname{"Web.Example.com", "*.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].GetExact() != "web.example.com" || strings.Join(got[1].GetSuffix().GetReverseLabels(), ".") != "com.example" {
		t.Errorf("hosts = %v", got)
	}
	if _, err := Hosts([]gatewayv1.Hostname{"a.*.com"}); err == nil {
		t.Error("inner wildcard accepted")
	}
}

func TestLinkerdFilters(t *testing.T) {
	fs, err := LinkerdHTTPFilters([]api.HTTPRouteFilter{
		{Type: api.FilterRequestHeaderModifier, RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{{Name: "X-A", Value: "1"}}, Remove: []string{"X-B"}}},
		{Type: api.FilterResponseHeaderModifier, ResponseHeaderModifier: &gatewayv1.HTTPHeaderFilter{Add: []gatewayv1.HTTPHeader{{Name: "x-c", Value: "2"}}}},
		{Type: api.FilterRequestRedirect, RequestRedirect: &gatewayv1.HTTPRequestRedirectFilter{Scheme: ptr("https"), StatusCode: ptr(301),
			Path: &gatewayv1.HTTPPathModifier{Type: gatewayv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr("/v2")}}},
		{Type: api.FilterFailureInjector, FailureInjector: &api.FailureInjector{Status: ptr(int32(503)), Message: "chaos", Ratio: &api.Ratio{Numerator: 1, Denominator: 10}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if h := fs[0].RequestHeaders; h.GetSet().GetHeaders()[0].GetName() != "x-a" || h.GetRemove()[0] != "x-b" {
		t.Errorf("request headers = %v", h)
	}
	if fs[1].ResponseHeaders.GetAdd().GetHeaders()[0].GetName() != "x-c" {
		t.Errorf("response headers = %v", fs[1].ResponseHeaders)
	}
	if r := fs[2].Redirect; r.GetStatus() != 301 || r.GetScheme().GetRegistered().String() != "HTTPS" || r.GetPath().GetPrefix() != "/v2" {
		t.Errorf("redirect = %v", r)
	}
	want := &httproute.HttpFailureInjector{Status: 503, Message: "chaos", Ratio: &httproute.Ratio{Numerator: 1, Denominator: 10}}
	if !proto.Equal(fs[3].FailureInjector, want) {
		t.Errorf("failure injector = %v, want %v", fs[3].FailureInjector, want)
	}
	for name, f := range map[string]api.HTTPRouteFilter{
		"missing body": {Type: api.FilterRequestRedirect},
		"bad ratio":    {Type: api.FilterFailureInjector, FailureInjector: &api.FailureInjector{Ratio: &api.Ratio{Numerator: 2, Denominator: 1}}},
		"bad status":   {Type: api.FilterFailureInjector, FailureInjector: &api.FailureInjector{Status: ptr(int32(42))}},
		"unknown":      {Type: "URLRewrite"},
	} {
		if _, err := LinkerdHTTPFilters([]api.HTTPRouteFilter{f}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := GatewayHTTPFilters([]gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestMirror}}); err == nil || !strings.Contains(err.Error(), "RequestMirror") {
		t.Errorf("mirror filter: %v, want an error naming it", err)
	}
}

func TestTimeouts(t *testing.T) {
	r := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns", Annotations: map[string]string{AnnTimeoutRequest: "10s", AnnTimeoutIdle: "1m"}},
		Spec: gatewayv1.HTTPRouteSpec{Rules: []gatewayv1.HTTPRouteRule{
			{Timeouts: &gatewayv1.HTTPRouteTimeouts{Request: ptr(gatewayv1.Duration("5s")), BackendRequest: ptr(gatewayv1.Duration("2s"))}},
			{},
		}},
	}
	got, err := FromGatewayHTTP(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TimeoutConfig{Request: 5 * time.Second, Response: 2 * time.Second, Idle: time.Minute}); got.Rules[0].Timeouts != want {
		t.Errorf("rule 0 timeouts = %+v, want %+v (spec over annotations)", got.Rules[0].Timeouts, want)
	}
	svc := TimeoutConfig{Request: time.Hour, Response: 3 * time.Second}
	if want := (TimeoutConfig{Request: 10 * time.Second, Response: 3 * time.Second, Idle: time.Minute}); got.Rules[1].Timeouts.Or(svc) != want {
		t.Errorf("rule 1 timeouts = %+v, want %+v (route annotations over the Service's)", got.Rules[1].Timeouts.Or(svc), want)
	}
	r.Spec.Rules[0].Timeouts.BackendRequest = ptr(gatewayv1.Duration("1m"))
	if _, err := FromGatewayHTTP(r); err == nil || !strings.Contains(err.Error(), "backendRequest") {
		t.Errorf("backendRequest > request: %v", err)
	}
	r.Annotations[AnnTimeoutRequest] = "10 seconds"
	if _, err := FromGatewayHTTP(r); err == nil || !strings.Contains(err.Error(), AnnTimeoutRequest) {
		t.Errorf("bad annotation: %v", err)
	}
}

func TestRetries(t *testing.T) {
	r, err := ParseRetryAnnotations(map[string]string{AnnRetryHTTP: "5xx, gateway-error,429,500-504", AnnRetryLimit: "5", AnnRetryTimeout: "300ms"})
	if err != nil {
		t.Fatal(err)
	}
	p := r.HTTPProto()
	if p.GetMaxRetries() != 5 || p.GetTimeout().AsDuration() != 300*time.Millisecond || p.GetMaxRequestBytes() != 65536 {
		t.Errorf("retry = %v", p)
	}
	var ranges []StatusRange
	for _, sr := range p.GetConditions().GetStatusRanges() {
		ranges = append(ranges, StatusRange{sr.GetStart(), sr.GetEnd()})
	}
	if want := []StatusRange{{500, 599}, {502, 504}, {429, 429}, {500, 504}}; len(ranges) != len(want) || ranges[0] != want[0] || ranges[1] != want[1] || ranges[2] != want[2] || ranges[3] != want[3] {
		t.Errorf("ranges = %v, want %v", ranges, want)
	}
	g, err := ParseRetryAnnotations(map[string]string{AnnRetryGRPC: "unavailable,internal"})
	if err != nil {
		t.Fatal(err)
	}
	gp := g.GRPCProto()
	if gp.GetMaxRetries() != 1 || !gp.GetConditions().GetUnavailable() || !gp.GetConditions().GetInternal() || gp.GetConditions().GetCancelled() {
		t.Errorf("grpc retry = %v", gp)
	}
	if none, _ := ParseRetryAnnotations(nil); none.HTTPProto() != nil || none.GRPCProto() != nil {
		t.Error("retries without annotations")
	}
	for _, bad := range []map[string]string{{AnnRetryHTTP: "6xx"}, {AnnRetryHTTP: "504-500"}, {AnnRetryHTTP: ""}, {AnnRetryGRPC: "not-found"}, {AnnRetryLimit: "-1"}, {AnnRetryTimeout: "1.5s"}} {
		if _, err := ParseRetryAnnotations(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestFailureAccrual(t *testing.T) {
	fa, err := FailureAccrual(map[string]string{AnnFailureAccrual: "consecutive"})
	if err != nil {
		t.Fatal(err)
	}
	c := fa.GetConsecutiveFailures()
	if c.GetMaxFailures() != 7 || c.GetBackoff().GetMinBackoff().AsDuration() != time.Second || c.GetBackoff().GetMaxBackoff().AsDuration() != time.Minute || c.GetBackoff().GetJitterRatio() != 0.5 {
		t.Errorf("defaults = %v", c)
	}
	fa, err = FailureAccrual(map[string]string{AnnFailureAccrual: "consecutive", AnnAccrualMaxFailures: "3", AnnAccrualMinPenalty: "2s", AnnAccrualMaxPenalty: "30s", AnnAccrualJitterPercent: "25"})
	if err != nil {
		t.Fatal(err)
	}
	c = fa.GetConsecutiveFailures()
	if c.GetMaxFailures() != 3 || c.GetBackoff().GetMinBackoff().AsDuration() != 2*time.Second || c.GetBackoff().GetMaxBackoff().AsDuration() != 30*time.Second || c.GetBackoff().GetJitterRatio() != 0.25 {
		t.Errorf("annotated = %v", c)
	}
	if fa, err := FailureAccrual(nil); fa != nil || err != nil {
		t.Errorf("no annotation = %v, %v", fa, err)
	}
	for _, bad := range []map[string]string{
		{AnnFailureAccrual: "sometimes"},
		{AnnFailureAccrual: "consecutive", AnnAccrualMaxFailures: "0"},
		{AnnFailureAccrual: "consecutive", AnnAccrualMinPenalty: "2m", AnnAccrualMaxPenalty: "1m"},
		{AnnFailureAccrual: "consecutive", AnnAccrualJitterRatio: "NaN"},
	} {
		if _, err := FailureAccrual(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestBackends(t *testing.T) {
	r := &api.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"}, Spec: api.HTTPRouteSpec{
		ParentRefs: []gatewayv1.ParentReference{{Group: ptr(gatewayv1.Group("core")), Kind: ptr(gatewayv1.Kind("Service")), Name: "web", Port: ptr(gatewayv1.PortNumber(80))}},
		Rules: []api.HTTPRouteRule{{BackendRefs: []api.HTTPBackendRef{
			{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: "web-v1", Port: ptr(gatewayv1.PortNumber(80))}, Weight: ptr(int32(9))}},
			{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: "web-v2", Namespace: ptr(gatewayv1.Namespace("other")), Port: ptr(gatewayv1.PortNumber(8080))}}},
		}}},
	}}
	got, err := FromLinkerdHTTP(r)
	if err != nil {
		t.Fatal(err)
	}
	b := got.Rules[0].Backends
	if b[0].Group != "core" || b[0].Kind != "Service" || b[0].Name != "web-v1" || b[0].Namespace != "ns" || b[0].Port != 80 || b[0].Weight != 9 || b[1].Namespace != "other" || b[1].Weight != 1 || !b[1].IsService() {
		t.Errorf("backends = %+v", b)
	}
	if !ParentIsService(got.ParentRefs[0]) || ParentIsServer(got.ParentRefs[0]) {
		t.Error("parent is not recognised as a Service")
	}
	r.Spec.Rules[0].BackendRefs[1].Port = nil
	if _, err := FromLinkerdHTTP(r); err == nil || !strings.Contains(err.Error(), "rules[0]") {
		t.Errorf("portless Service backend: %v", err)
	}
}

func FuzzRetryAnnotations(f *testing.F) {
	for _, s := range []string{"5xx", "gateway-error,429", "500-504", "5xx,", "-", "999", "cancelled,unavailable", "1s", "10"} {
		f.Add(s, s, s, s)
	}
	f.Fuzz(func(t *testing.T, httpV, grpcV, limit, timeout string) {
		r, err := ParseRetryAnnotations(map[string]string{AnnRetryHTTP: httpV, AnnRetryGRPC: grpcV, AnnRetryLimit: limit, AnnRetryTimeout: timeout})
		if err != nil {
			return
		}
		for _, sr := range r.HTTP {
			if sr.Start < 100 || sr.End > 599 || sr.Start > sr.End {
				t.Fatalf("accepted invalid range %v from %q", sr, httpV)
			}
		}
		if r.Timeout < 0 || r.HTTPProto() == nil || r.GRPCProto() == nil {
			t.Fatalf("accepted %q/%q/%q/%q as %+v", httpV, grpcV, limit, timeout, r)
		}
	})
}

func FuzzTimeoutAnnotations(f *testing.F) {
	for _, s := range []string{"5s", "1m30s", "250ms", "1h2m3s4ms", "", "1.5s", "-1s", "99999h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tc, err := ParseTimeoutAnnotations(map[string]string{AnnTimeoutRequest: s, AnnTimeoutResponse: s, AnnTimeoutIdle: s})
		if err == nil && (tc.Request < 0 || tc.Request != tc.Idle) {
			t.Fatalf("%q parsed as %+v", s, tc)
		}
	})
}

func FuzzFailureAccrual(f *testing.F) {
	for _, s := range []string{"consecutive", "7", "1s", "1m", "0.5", "50", ""} {
		f.Add(s, s, s, s, s)
	}
	f.Fuzz(func(t *testing.T, mode, maxF, minP, maxP, jitter string) {
		fa, err := FailureAccrual(map[string]string{AnnFailureAccrual: mode, AnnAccrualMaxFailures: maxF, AnnAccrualMinPenalty: minP, AnnAccrualMaxPenalty: maxP, AnnAccrualJitterRatio: jitter})
		if err != nil {
			return
		}
		c := fa.GetConsecutiveFailures()
		if c.GetMaxFailures() == 0 || c.GetBackoff().GetMinBackoff().AsDuration() > c.GetBackoff().GetMaxBackoff().AsDuration() || c.GetBackoff().GetJitterRatio() < 0 {
			t.Fatalf("accepted invalid accrual %v", c)
		}
	})
}

func TestGatewayRewriteAndRedirectStatuses(t *testing.T) {
	fs, err := GatewayHTTPFilters([]gatewayv1.HTTPRouteFilter{
		{Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: &gatewayv1.HTTPURLRewriteFilter{Hostname: ptr(gatewayv1.PreciseHostname("Web.Example")),
			Path: &gatewayv1.HTTPPathModifier{Type: gatewayv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr("/one")}}},
		{Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: &gatewayv1.HTTPURLRewriteFilter{
			Path: &gatewayv1.HTTPPathModifier{Type: gatewayv1.FullPathHTTPPathModifier, ReplaceFullPath: ptr("/test")}}},
		{Type: gatewayv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gatewayv1.HTTPRequestRedirectFilter{StatusCode: ptr(308)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &httproute.UrlRewrite{Host: "web.example", Path: &httproute.PathModifier{Replace: &httproute.PathModifier_Prefix{Prefix: "/one"}}}
	if !proto.Equal(fs[0].Rewrite, want) {
		t.Errorf("rewrite = %v, want %v", fs[0].Rewrite, want)
	}
	if fs[1].Rewrite.GetHost() != "" || fs[1].Rewrite.GetPath().GetFull() != "/test" {
		t.Errorf("full-path rewrite = %v", fs[1].Rewrite)
	}
	if fs[2].Redirect.GetStatus() != 308 {
		t.Errorf("redirect status = %d, want 308", fs[2].Redirect.GetStatus())
	}
	for _, code := range []int{303, 307} {
		if _, err := GatewayHTTPFilters([]gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gatewayv1.HTTPRequestRedirectFilter{StatusCode: ptr(code)}}}); err != nil {
			t.Errorf("status %d: %v", code, err)
		}
	}
	for name, f := range map[string]gatewayv1.HTTPRouteFilter{
		"rewrite without body": {Type: gatewayv1.HTTPRouteFilterURLRewrite},
		"rewrite bad path":     {Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: &gatewayv1.HTTPURLRewriteFilter{Path: &gatewayv1.HTTPPathModifier{Type: gatewayv1.FullPathHTTPPathModifier}}},
		"redirect status 300":  {Type: gatewayv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gatewayv1.HTTPRequestRedirectFilter{StatusCode: ptr(300)}},
	} {
		if _, err := GatewayHTTPFilters([]gatewayv1.HTTPRouteFilter{f}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
