package metrics

import (
	"strings"
	"testing"
	"time"
)

type fixedEndpoints struct{ ready, pending int }

func (f *fixedEndpoints) EndpointStates() (int, int) { return f.ready, f.pending }

// TestPolicyFamilies: route and backend series render Linkerd's names, labels, buckets,
// statuses (HTTP codes, gRPC code names, no status) and error labels; balancer gauges
// read their balancer at exposition and disappear once released.
func TestPolicyFamilies(t *testing.T) {
	r := New()
	parent := Ref{Group: "core", Kind: "Service", Namespace: "ns", Name: "web", Port: 80}.ParentLabels()
	route := Ref{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute", Namespace: "ns", Name: "split"}.RouteLabels()
	backend := Ref{Group: "core", Kind: "Service", Namespace: "ns", Name: "web-v2", Port: 8080}.BackendLabels()
	rq := r.RouteRequests(false, Join(parent, route, Labels("hostname", "web.ns")))
	if r.RouteRequests(false, Join(parent, route, Labels("hostname", "web.ns"))) != rq {
		t.Fatal("same labels gave a different handle")
	}
	rq.Done(200, ErrNone, 30*time.Millisecond)
	rq.Done(200, ErrNone, 700*time.Millisecond)
	rq.Done(0, ErrFailFast, 3*time.Second)
	bq := r.BackendRequests(false, Join(parent, route, backend))
	bq.Request()
	bq.Done(503, ErrNone, 20*time.Millisecond)
	gq := r.BackendRequests(true, Join(parent, route, backend))
	gq.Request()
	gq.Done(ParseGRPCStatus("5"), ErrNone, time.Millisecond)
	gq.Done(ParseGRPCStatus(""), ErrResponseHeadersTimeout, time.Millisecond)
	r.RouteRetries(false, Join(parent, route)).Request()
	eps := &fixedEndpoints{ready: 2, pending: 1}
	g := r.Balancer(false, Join(parent, backend))
	g.Set(eps)

	out := scrape(t, r)
	rl := `parent_group="core",parent_kind="Service",parent_namespace="ns",parent_name="web",parent_port="80",parent_section_name="",` +
		`route_group="gateway.networking.k8s.io",route_kind="HTTPRoute",route_namespace="ns",route_name="split"`
	bl := rl + `,backend_group="core",backend_kind="Service",backend_namespace="ns",backend_name="web-v2",backend_port="8080",backend_section_name=""`
	for _, w := range []string{
		`outbound_http_route_request_statuses_total{` + rl + `,hostname="web.ns",http_status="200",error=""} 2`,
		`outbound_http_route_request_statuses_total{` + rl + `,hostname="web.ns",http_status="",error="FAIL_FAST"} 1`,
		`outbound_http_route_request_duration_seconds_bucket{` + rl + `,hostname="web.ns",le="0.05"} 1`,
		`outbound_http_route_request_duration_seconds_bucket{` + rl + `,hostname="web.ns",le="1"} 2`,
		`outbound_http_route_request_duration_seconds_bucket{` + rl + `,hostname="web.ns",le="10"} 3`,
		`outbound_http_route_request_duration_seconds_sum{` + rl + `,hostname="web.ns"} 3.73`,
		`outbound_http_route_request_duration_seconds_count{` + rl + `,hostname="web.ns"} 3`,
		`outbound_http_route_backend_requests_total{` + bl + `} 1`,
		`outbound_http_route_backend_response_statuses_total{` + bl + `,http_status="503",error=""} 1`,
		`outbound_http_route_backend_response_duration_seconds_bucket{` + bl + `,le="0.025"} 1`,
		`outbound_grpc_route_backend_response_statuses_total{` + bl + `,grpc_status="NOT_FOUND",error=""} 1`,
		`outbound_grpc_route_backend_response_statuses_total{` + bl + `,grpc_status="UNKNOWN",error="RESPONSE_HEADERS_TIMEOUT"} 1`,
		`outbound_http_route_retry_requests_total{` + rl + `} 1`,
		`outbound_http_balancer_endpoints{parent_group="core",parent_kind="Service",parent_namespace="ns",parent_name="web",parent_port="80",parent_section_name="",backend_group="core",backend_kind="Service",backend_namespace="ns",backend_name="web-v2",backend_port="8080",backend_section_name="",endpoint_state="ready"} 2`,
		`,endpoint_state="pending"} 1`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("missing %s\nin:\n%s", w, out)
		}
	}
	if strings.Contains(out, "outbound_grpc_route_request_statuses_total") {
		t.Error("a gRPC route family without series is exported")
	}
	g.Release()
	if out := scrape(t, r); strings.Contains(out, "balancer_endpoints") {
		t.Errorf("a released balancer gauge is still exported:\n%s", strings.Join(lines(out, "outbound_http_balancer"), "\n"))
	}
}

// TestPolicySeriesAreBounded: policy families keep MaxSeries label sets plus an overflow
// series, drop idle series, and a dropped handle revives with its counts.
func TestPolicySeriesAreBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	r := New()
	r.now = func() time.Time { return now }
	r.MaxSeries, r.RetainIdle = 2, time.Minute
	var qs []*Requests
	for _, h := range []string{"a", "b", "c", "d"} {
		q := r.RouteRequests(false, Labels("hostname", h))
		q.Done(200, ErrNone, time.Millisecond)
		qs = append(qs, q)
	}
	out := scrape(t, r)
	if got := lines(out, "outbound_http_route_request_statuses_total{"); len(got) != 3 ||
		!strings.Contains(out, `outbound_http_route_request_statuses_total{overflow="true",http_status="200",error=""} 2`) {
		t.Fatalf("want 2 series and an overflow series of 2:\n%s", strings.Join(got, "\n"))
	}
	now = now.Add(2 * time.Minute)
	qs[1].Done(200, ErrNone, time.Millisecond) // b stays
	out = scrape(t, r)
	if strings.Contains(out, `hostname="a"`) || !strings.Contains(out, `{hostname="b",http_status="200",error=""} 2`) {
		t.Fatalf("idle series a should be dropped, b kept:\n%s", out)
	}
	qs[0].Done(200, ErrNone, time.Millisecond) // a comes back with its first count
	if out := scrape(t, r); !strings.Contains(out, `{hostname="a",http_status="200",error=""} 2`) {
		t.Fatalf("revived series a should count 2:\n%s", strings.Join(lines(out, "outbound_http_route_request_statuses_total"), "\n"))
	}
}

func TestBuildInfo(t *testing.T) {
	r := New()
	r.BuildInfo("v1.2.3")
	out := scrape(t, r)
	if !strings.Contains(out, `proxy_build_info{version="v1.2.3",git_sha="`) || !strings.Contains(out, `vendor="l5d"} 1`) {
		t.Fatalf("proxy_build_info: %s", strings.Join(lines(out, "proxy_build_info"), "\n"))
	}
}
