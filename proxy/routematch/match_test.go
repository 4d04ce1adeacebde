package routematch

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
)

func prefix(p string) *httproute.HttpRouteMatch {
	return &httproute.HttpRouteMatch{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: p}}}
}

func mustHTTP(t *testing.T, hosts []*httproute.HostMatch, rules ...[]*httproute.HttpRouteMatch) Matcher {
	t.Helper()
	m, err := HTTP(hosts, rules...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// best returns the index of the matcher that wins r, or -1.
func best(t Table, method, url, host, canary string) int {
	r := httptest.NewRequest(method, url, nil)
	if host != "" {
		r.Host = host
	}
	if canary != "" {
		r.Header.Set("X-Canary", canary)
	}
	path, _ := RequestPath(r)
	i, ok := t.Best(r, path)
	if !ok {
		return -1
	}
	return i
}

// TestPrecedence: the Gateway API order, host first, then path kind and length, method,
// headers, query parameters; the first declared wins ties.
func TestPrecedence(t *testing.T) {
	get := &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Registered_{Registered: httptypes.HttpMethod_GET}}
	suffix := []*httproute.HostMatch{{Match: &httproute.HostMatch_Suffix_{Suffix: &httproute.HostMatch_Suffix{ReverseLabels: []string{"com", "example"}}}}}
	exact := []*httproute.HostMatch{{Match: &httproute.HostMatch_Exact{Exact: "api.example.com"}}}
	ms := Table{
		0: mustHTTP(t, nil, []*httproute.HttpRouteMatch{prefix("/")}),
		1: mustHTTP(t, nil, []*httproute.HttpRouteMatch{prefix("/api")}),
		2: mustHTTP(t, nil, []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Exact{Exact: "/api/ready"}}}}),
		3: mustHTTP(t, nil, []*httproute.HttpRouteMatch{{Path: prefix("/api").Path, Method: get}}),
		4: mustHTTP(t, nil, []*httproute.HttpRouteMatch{{Path: prefix("/api").Path, Method: get,
			Headers: []*httproute.HeaderMatch{{Name: "x-canary", Value: &httproute.HeaderMatch_Exact{Exact: []byte("1")}}}}}),
		5: mustHTTP(t, nil, []*httproute.HttpRouteMatch{{Path: prefix("/api").Path, Method: get,
			Headers:     []*httproute.HeaderMatch{{Name: "x-canary", Value: &httproute.HeaderMatch_Regex{Regex: "[0-9]"}}},
			QueryParams: []*httproute.QueryParamMatch{{Name: "debug", Value: &httproute.QueryParamMatch_Exact{Exact: "true"}}}}}),
		6: mustHTTP(t, suffix, []*httproute.HttpRouteMatch{prefix("/")}),
		7: mustHTTP(t, exact, nil), // a rule without matches matches every request
		8: mustHTTP(t, nil, []*httproute.HttpRouteMatch{prefix("/")}),
	}
	for _, c := range []struct {
		method, url, host, canary string
		want                      int
	}{
		{"POST", "/", "", "", 0}, // the first declared wins ties
		{"POST", "/apix", "", "", 0},
		{"POST", "/api/x", "", "", 1},
		{"POST", "/api/ready", "", "", 2},
		{"GET", "/api/x", "", "", 3},
		{"GET", "/api/x?debug=true", "", "", 3},
		{"GET", "/api/x", "", "1", 4},
		{"GET", "/api/x?debug=true", "", "1", 5},
		{"GET", "/api/x?debug=false", "", "1", 4},
		{"GET", "/api/x?debug=true", "", "7", 5},
		{"GET", "/api/%61?debug=true", "www.example.com", "", 6},
		{"GET", "/api/x", "API.example.com.:8080", "", 7},
	} {
		if got := best(ms, c.method, c.url, c.host, c.canary); got != c.want {
			t.Errorf("%s %s (host %q, x-canary %q): matcher %d, want %d", c.method, c.url, c.host, c.canary, got, c.want)
		}
	}
	if !ms.NeedsHeaders() || !ms[5].NeedsHeaders() || ms[3].NeedsHeaders() || ms[:4].NeedsHeaders() {
		t.Error("NeedsHeaders wrong")
	}
}

func TestGRPC(t *testing.T) {
	rpc := func(svc, method string) []*grpcroute.GrpcRouteMatch {
		return []*grpcroute.GrpcRouteMatch{{Rpc: &grpcroute.GrpcRpcMatch{Service: svc, Method: method}}}
	}
	var ms Table
	for _, rule := range [][]*grpcroute.GrpcRouteMatch{rpc("", "Get"), rpc("pkg.Svc", ""), rpc("pkg.Svc", "Get")} {
		m, err := GRPC(nil, rule)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	for url, want := range map[string]int{"/pkg.Svc/Get": 2, "/pkg.Svc/List": 1, "/other.Svc/Get": 0, "/other.Svc/List": -1, "/nomethod": -1} {
		if got := best(ms, "POST", url, "", ""); got != want {
			t.Errorf("%s: matcher %d, want %d", url, got, want)
		}
	}
	if anyGRPC := Any(true); !anyGRPC.CatchAll() || ms[0].CatchAll() || !ms[0].OnPath() {
		t.Error("CatchAll/OnPath wrong for gRPC")
	}
}

func TestCatchAllAndOnPath(t *testing.T) {
	root := mustHTTP(t, nil, []*httproute.HttpRouteMatch{prefix("/")})
	api := mustHTTP(t, nil, []*httproute.HttpRouteMatch{prefix("/api")})
	host := mustHTTP(t, []*httproute.HostMatch{{Match: &httproute.HostMatch_Exact{Exact: "a"}}}, []*httproute.HttpRouteMatch{prefix("/")})
	all := Any(false)
	if !root.CatchAll() || api.CatchAll() || host.CatchAll() || !all.CatchAll() {
		t.Error("CatchAll wrong")
	}
	if root.OnPath() || !api.OnPath() || all.OnPath() {
		t.Error("OnPath wrong")
	}
	if got := best(Table{{}}, "GET", "/", "", ""); got != -1 {
		t.Error("the zero Matcher matched")
	}
	if (Table{root, all}).OnPath() || !(Table{root, api}).OnPath() {
		t.Error("Table.OnPath wrong")
	}
}

func TestCompileErrorsNameTheProblem(t *testing.T) {
	for _, c := range []struct {
		hosts []*httproute.HostMatch
		m     *httproute.HttpRouteMatch
		want  string
	}{
		{nil, &httproute.HttpRouteMatch{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Regex{Regex: "(["}}}, `path regex "(["`},
		{nil, &httproute.HttpRouteMatch{Headers: []*httproute.HeaderMatch{{Value: &httproute.HeaderMatch_Exact{Exact: []byte("1")}}}}, "header match without a name"},
		{nil, &httproute.HttpRouteMatch{Headers: []*httproute.HeaderMatch{{Name: "x", Value: &httproute.HeaderMatch_Regex{Regex: "("}}}}, "header x regex"},
		{nil, &httproute.HttpRouteMatch{QueryParams: []*httproute.QueryParamMatch{{Name: "q", Value: &httproute.QueryParamMatch_Regex{Regex: "("}}}}, "query parameter q regex"},
		{[]*httproute.HostMatch{{}}, prefix("/"), "empty host match"},
		{[]*httproute.HostMatch{{Match: &httproute.HostMatch_Suffix_{Suffix: &httproute.HostMatch_Suffix{}}}}, prefix("/"), "host suffix match without labels"},
	} {
		_, err := HTTP(c.hosts, []*httproute.HttpRouteMatch{c.m})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one saying %q", err, c.want)
		}
	}
}
