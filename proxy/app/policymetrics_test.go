package app

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// The labels Linkerd's proxy gives the parent Service web.ns:80 and its routes and
// backends in the outbound route families.
const (
	webParent  = `parent_group="core",parent_kind="Service",parent_namespace="ns",parent_name="web",parent_port="80",parent_section_name=""`
	splitRoute = `route_group="gateway.networking.k8s.io",route_kind="HTTPRoute",route_namespace="ns",route_name="web-split"`
	webHost    = `hostname="web.ns.svc.cluster.local"`
)

func backendLabels(name string) string {
	return `backend_group="core",backend_kind="Service",backend_namespace="ns",backend_name="` + name +
		`",backend_port="80",backend_section_name=""`
}

// serviceMeta is the metadata the policy controller sends for port 80 of Service name.ns.
func serviceMeta(name string) *pbmeta.Metadata {
	return &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{
		Group: "core", Kind: "Service", Namespace: "ns", Name: name, Port: 80}}}
}

// withMetadata gives a policy its parent Service's metadata, and each backend of its HTTP
// rules the metadata of the Service its authority names.
func withMetadata(p *pb.OutboundPolicy) *pb.OutboundPolicy {
	p.Metadata = serviceMeta("web")
	for _, r := range p.GetProtocol().GetDetect().GetHttp1().GetRoutes() {
		for _, rule := range r.GetRules() {
			for _, wb := range rule.GetBackends().GetRandomAvailable().GetBackends() {
				be := wb.GetBackend().GetBackend()
				path := be.GetBalancer().GetDiscovery().GetDst().GetPath()
				be.Metadata = serviceMeta(strings.SplitN(path, ".", 2)[0])
			}
		}
	}
	return p
}

// metricsProxy starts the apps of web and web-v2 (web-v2 a gRPC one, answering OK in
// its trailers) and an outbound proxy whose control plane serves op's policies.
func metricsProxy(t *testing.T) (*scriptedcp.OutboundPolicies, *Proxy, netip.AddrPort) {
	t.Helper()
	d, cp := startDestination(t)
	d.Set(svc, scriptedcp.Endpoint{Addr: policyApp(t, "web")})
	grpcApp, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "Grpc-Status")
		io.WriteString(w, "v2")
		w.Header().Set("Grpc-Status", "0")
	}))
	d.Set(svcV2, scriptedcp.Endpoint{Addr: grpcApp})
	op, p := policyProxyOver(t, cp)
	_, out, _ := p.Addrs()
	return op, p, out
}

// parseExposition parses a scrape with Prometheus' own parser and returns its families.
func parseExposition(t *testing.T, text string) map[string]bool {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader([]byte(text)))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v\n%s", err, text)
	}
	names := map[string]bool{}
	for name := range fams {
		names[name] = true
	}
	return names
}

// checkSeries fails for each series whose value in p's metrics is not the wanted one.
func checkSeries(t *testing.T, p *Proxy, want map[string]string) {
	t.Helper()
	for series, v := range want {
		if got := metricValue(t, p, series); got != v {
			t.Errorf("%s = %s, want %s", series, got, v)
		}
	}
}

// TestOutboundPolicyRouteMetrics: requests routed by an HTTPRoute splitting web across
// two weighted Services, over the HTTP/1 fast path's connections and HTTP/2, are counted
// in Linkerd's route families (once per request, with the parent Service, the route and
// the hostname) and route-backend families (per backend, adding up to the requests), a
// rule timeout is recorded as error="RESPONSE_HEADERS_TIMEOUT", each backend's balancer
// reports its ready endpoint, and the whole exposition parses as Prometheus text.
func TestOutboundPolicyRouteMetrics(t *testing.T) {
	op, p, out := metricsProxy(t)
	op.Set(svc, withMetadata(httpRoutePolicy(
		routeRule("/", 0, nil, weighted{svc, 1}, weighted{svcV2, 1}),
		routeRule("/slow", 100*time.Millisecond, nil, weighted{svc, 1}),
	)))
	seen := map[string]int{}
	for _, h2 := range []bool{false, true} {
		for k, v := range answers(clientTo(out, h2), "http://"+svc+"/", 20) {
			seen[k] += v
		}
	}
	if seen["web"]+seen["v2"] != 40 || seen["web"] == 0 || seen["v2"] == 0 {
		t.Fatalf("answers %v, want 40 split between web and v2", seen)
	}
	if resp, _ := get(t, clientTo(out, false), "http://"+svc+"/slow"); resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("/slow: %d, want 504 after the rule's timeout", resp.StatusCode)
	}
	route := webParent + "," + splitRoute
	checkSeries(t, p, map[string]string{
		`outbound_http_route_request_statuses_total{` + route + `,` + webHost + `,http_status="200",error=""}`:                                            "40",
		`outbound_http_route_request_duration_seconds_count{` + route + `,` + webHost + `}`:                                                               "41",
		`outbound_http_route_request_statuses_total{` + route + `,` + webHost + `,http_status="",error="RESPONSE_HEADERS_TIMEOUT"}`:                       "1",
		`outbound_http_route_backend_requests_total{` + route + `,` + backendLabels("web") + `}`:                                                          fmt.Sprint(seen["web"] + 1),
		`outbound_http_route_backend_requests_total{` + route + `,` + backendLabels("web-v2") + `}`:                                                       fmt.Sprint(seen["v2"]),
		`outbound_http_route_backend_response_statuses_total{` + route + `,` + backendLabels("web") + `,http_status="200",error=""}`:                      fmt.Sprint(seen["web"]),
		`outbound_http_route_backend_response_duration_seconds_count{` + route + `,` + backendLabels("web-v2") + `}`:                                      fmt.Sprint(seen["v2"]),
		`outbound_http_route_backend_response_statuses_total{` + route + `,` + backendLabels("web") + `,http_status="",error="RESPONSE_HEADERS_TIMEOUT"}`: "1",
		`outbound_http_balancer_endpoints{` + webParent + `,` + backendLabels("web") + `,endpoint_state="ready"}`:                                         "1",
		`outbound_http_balancer_endpoints{` + webParent + `,` + backendLabels("web-v2") + `,endpoint_state="pending"}`:                                    "0",
	})
	text := scrape(t, p)
	names := parseExposition(t, text)
	for _, name := range []string{"proxy_build_info", "outbound_http_route_request_duration_seconds",
		"outbound_http_route_request_statuses_total", "outbound_http_route_backend_requests_total",
		"outbound_http_route_backend_response_duration_seconds", "outbound_http_route_backend_response_statuses_total",
		"outbound_http_balancer_endpoints", "request_total", "response_latency_ms"} {
		if !names[name] {
			t.Errorf("/metrics has no family %s", name)
		}
	}
	if !strings.Contains(text, `proxy_build_info{version="`) || !strings.Contains(text, `vendor="l5d"} 1`) {
		t.Errorf("proxy_build_info lacks its labels:\n%s", strings.Join(lines(text, "proxy_build_info"), "\n"))
	}
	// Buckets are Linkerd's: 0.05, 0.5, 1 and 10s for route request durations.
	for _, le := range []string{"0.05", "0.5", "1", "10", "+Inf"} {
		if got := metricValue(t, p, `outbound_http_route_request_duration_seconds_bucket{`+route+`,`+webHost+`,le="`+le+`"}`); got == "absent" {
			t.Errorf("no route duration bucket le=%s", le)
		}
	}
}

// TestOutboundPolicyDefaultRouteMetrics: with the policy controller's default route
// (which keeps the HTTP/1 fast path), requests are recorded under route_kind="default"
// with the Service itself as the backend, as Linkerd records every Service's traffic.
func TestOutboundPolicyDefaultRouteMetrics(t *testing.T) {
	op, p, out := metricsProxy(t)
	def := &pb.HttpRoute{Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "default"}},
		Rules: []*pb.HttpRoute_Rule{routeRule("/", 0, nil, weighted{svc, 1})}}
	op.Set(svc, withMetadata(&pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{
		Http1: &pb.ProxyProtocol_Http1{Routes: []*pb.HttpRoute{def}}}}}}))
	for _, h2 := range []bool{false, true} {
		if got := answers(clientTo(out, h2), "http://"+svc+"/", 10); got["web"] != 10 {
			t.Fatalf("h2=%v: answers %v, want all from web", h2, got)
		}
	}
	route := webParent + `,route_group="",route_kind="default",route_namespace="",route_name="default"`
	checkSeries(t, p, map[string]string{
		`outbound_http_route_request_statuses_total{` + route + `,` + webHost + `,http_status="200",error=""}`:                       "20",
		`outbound_http_route_backend_requests_total{` + route + `,` + backendLabels("web") + `}`:                                     "20",
		`outbound_http_route_backend_response_statuses_total{` + route + `,` + backendLabels("web") + `,http_status="200",error=""}`: "20",
		`outbound_http_balancer_endpoints{` + webParent + `,` + backendLabels("web") + `,endpoint_state="ready"}`:                    "1",
	})
	parseExposition(t, scrape(t, p))
}

// TestOutboundPolicyGRPCRouteMetrics: calls routed by a GRPCRoute are counted in the
// outbound_grpc_route_* families by their grpc-status (from the response trailers), and
// a call matching no route is not counted on any route.
func TestOutboundPolicyGRPCRouteMetrics(t *testing.T) {
	op, p, out := metricsProxy(t)
	backend := &pb.GrpcRoute_Distribution{Kind: &pb.GrpcRoute_Distribution_RandomAvailable_{RandomAvailable: &pb.GrpcRoute_Distribution_RandomAvailable{
		Backends: []*pb.GrpcRoute_WeightedRouteBackend{{Weight: 1, Backend: &pb.GrpcRoute_RouteBackend{Backend: &pb.Backend{
			Metadata: serviceMeta("web-v2"),
			Kind: &pb.Backend_Balancer{Balancer: &pb.Backend_BalanceP2C{Discovery: &pb.Backend_EndpointDiscovery{
				Kind: &pb.Backend_EndpointDiscovery_Dst{Dst: &pb.Backend_EndpointDiscovery_DestinationGet{Path: svcV2}}}}}}}}}}}}
	op.Set(svc, &pb.OutboundPolicy{Metadata: serviceMeta("web"), Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Grpc_{Grpc: &pb.ProxyProtocol_Grpc{Routes: []*pb.GrpcRoute{{
		Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{Group: "gateway.networking.k8s.io", Kind: "GRPCRoute", Namespace: "ns", Name: "hello"}}},
		Rules: []*pb.GrpcRoute_Rule{{
			Matches:  []*grpcroute.GrpcRouteMatch{{Rpc: &grpcroute.GrpcRpcMatch{Service: "demo.Greeter", Method: "Hello"}}},
			Backends: backend,
		}},
	}}}}}})
	c := clientTo(out, true)
	call := func(method string) string {
		t.Helper()
		resp, _ := callGreeter(t, c, method)
		if s := resp.Trailer.Get("Grpc-Status"); s != "" {
			return s
		}
		return resp.Header.Get("Grpc-Status")
	}
	for range 3 {
		if s := call("Hello"); s != "0" {
			t.Fatalf("demo.Greeter/Hello: grpc-status %q, want 0", s)
		}
	}
	if s := call("Bye"); s != "5" {
		t.Fatalf("demo.Greeter/Bye: grpc-status %q, want 5 (no route)", s)
	}
	route := webParent + `,route_group="gateway.networking.k8s.io",route_kind="GRPCRoute",route_namespace="ns",route_name="hello"`
	checkSeries(t, p, map[string]string{
		`outbound_grpc_route_request_statuses_total{` + route + `,` + webHost + `,grpc_status="OK",error=""}`:                          "3",
		`outbound_grpc_route_request_duration_seconds_count{` + route + `,` + webHost + `}`:                                            "3",
		`outbound_grpc_route_backend_requests_total{` + route + `,` + backendLabels("web-v2") + `}`:                                    "3",
		`outbound_grpc_route_backend_response_statuses_total{` + route + `,` + backendLabels("web-v2") + `,grpc_status="OK",error=""}`: "3",
		`outbound_grpc_balancer_endpoints{` + webParent + `,` + backendLabels("web-v2") + `,endpoint_state="ready"}`:                   "1",
	})
	text := scrape(t, p)
	if n := len(lines(text, "outbound_grpc_route_request_statuses_total{")); n != 1 {
		t.Errorf("%d gRPC route status series, want only the OK one:\n%s", n, text)
	}
	parseExposition(t, text)
}

// lines returns the lines of text that start with prefix.
func lines(text, prefix string) []string {
	var out []string
	for l := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}
