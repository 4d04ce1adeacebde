package routes

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	"github.com/l5d-go/l5d/proxy/metrics"
)

func path(re string) *pb.RequestMatch {
	return &pb.RequestMatch{Match: &pb.RequestMatch_Path{Path: &pb.PathMatch{Regex: re}}}
}

func method(m httptypes.HttpMethod_Registered) *pb.RequestMatch {
	return &pb.RequestMatch{Match: &pb.RequestMatch_Method{Method: &httptypes.HttpMethod{
		Type: &httptypes.HttpMethod_Registered_{Registered: m}}}}
}

func all(ms ...*pb.RequestMatch) *pb.RequestMatch {
	return &pb.RequestMatch{Match: &pb.RequestMatch_All{All: &pb.RequestMatch_Seq{Matches: ms}}}
}

func anyOfMatch(ms ...*pb.RequestMatch) *pb.RequestMatch {
	return &pb.RequestMatch{Match: &pb.RequestMatch_Any{Any: &pb.RequestMatch_Seq{Matches: ms}}}
}

func not(m *pb.RequestMatch) *pb.RequestMatch {
	return &pb.RequestMatch{Match: &pb.RequestMatch_Not{Not: m}}
}

func route(name string, cond *pb.RequestMatch) *pb.Route {
	return &pb.Route{Condition: cond, MetricsLabels: map[string]string{"route": name}}
}

func compile(t *testing.T, dp *pb.DestinationProfile) (*Table, *metrics.Registry) {
	t.Helper()
	reg := metrics.New()
	tbl, err := Compile(dp, Options{Metrics: reg, Labels: metrics.Labels("direction", "outbound", "dst", "web.ns.svc.cluster.local:80")})
	if err != nil {
		t.Fatal(err)
	}
	return tbl, reg
}

func TestFirstMatchingRouteApplies(t *testing.T) {
	tbl, _ := compile(t, &pb.DestinationProfile{Routes: []*pb.Route{
		route("GET /authors/{id}.json", all(method(httptypes.HttpMethod_GET), path(`/authors/[^/]*\.json`))),
		route("not POST", not(method(httptypes.HttpMethod_POST))),
		route("books", anyOfMatch(path(`/books`), path(`/books/.*`))),
	}})
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/authors/1.json", "GET /authors/{id}.json"},
		{"HEAD", "/authors/1.json", "not POST"},
		// Anchored: the regex must match the whole path.
		{"GET", "/x/authors/1.json", "not POST"},
		{"GET", "/authors/1.jsonx", "not POST"},
		{"POST", "/books/7", "books"},
		{"POST", "/bookshelf", ""},
	} {
		if got := tbl.Match(c.method, c.path); got.Name != c.want {
			t.Errorf("%s %s: route %q, want %q", c.method, c.path, got.Name, c.want)
		}
	}
	var none *Table
	if none.Match("GET", "/") != nil {
		t.Error("a nil table matched a route")
	}
}

func TestInvalidRoutesAreLeftOutWithReason(t *testing.T) {
	reg := metrics.New()
	tbl, err := Compile(&pb.DestinationProfile{Routes: []*pb.Route{
		route("bad", path(`/a(`)),
		route("empty", &pb.RequestMatch{}),
		route("good", path(`/a`)),
	}}, Options{Metrics: reg})
	if err == nil || !strings.Contains(err.Error(), `route 0 "bad": path regex "/a("`) || !strings.Contains(err.Error(), `"empty": empty request condition`) {
		t.Fatalf("error %v", err)
	}
	if tbl.Len() != 1 || tbl.Match("GET", "/a").Name != "good" {
		t.Fatalf("table has %d routes", tbl.Len())
	}
}

func TestResponseClassesThenDefault(t *testing.T) {
	r := route("r", path("/"))
	r.ResponseClasses = []*pb.ResponseClass{
		{Condition: &pb.ResponseMatch{Match: &pb.ResponseMatch_Status{Status: &pb.HttpStatusRange{Min: 500, Max: 502}}}, IsFailure: false},
		{Condition: &pb.ResponseMatch{Match: &pb.ResponseMatch_Status{Status: &pb.HttpStatusRange{Min: 429, Max: 429}}}, IsFailure: true},
	}
	tbl, _ := compile(t, &pb.DestinationProfile{Routes: []*pb.Route{r}})
	rt := tbl.Match("GET", "/")
	for _, c := range []struct {
		status int
		grpc   string
		want   bool
	}{{500, "", false}, {429, "", true}, {503, "", true}, {200, "", false}, {200, "14", true}, {200, "0", false}} {
		if got := rt.IsFailure(c.status, c.grpc); got != c.want {
			t.Errorf("status %d grpc %q: failure %v, want %v", c.status, c.grpc, got, c.want)
		}
	}
}

func TestRouteSettingsAndMetricsLabels(t *testing.T) {
	r := route("slow", path("/slow"))
	r.Timeout = durationpb.New(25 * time.Millisecond)
	r.IsRetryable = true
	r.MetricsLabels["bad-name"] = "x"
	tbl, reg := compile(t, &pb.DestinationProfile{Routes: []*pb.Route{r}})
	rt := tbl.Match("GET", "/slow")
	if rt.Timeout != 25*time.Millisecond || !rt.Retryable || !rt.NeedsPolicy() {
		t.Fatalf("route %+v", rt)
	}
	if tbl.Match("GET", "/").NeedsPolicy() {
		t.Fatal("the default route has a policy")
	}
	rt.Metrics.Request()
	var sb strings.Builder
	reg.WriteTo(&sb)
	if want := `route_request_total{direction="outbound",dst="web.ns.svc.cluster.local:80",rt_route="slow"} 1`; !strings.Contains(sb.String(), want) {
		t.Fatalf("metrics lack %s:\n%s", want, sb.String())
	}
	if strings.Contains(sb.String(), "bad-name") {
		t.Fatal("an invalid label name was exported")
	}
}

func TestBudgetRatioAndWindow(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBudget(0.5, 0, 10*time.Second)
	b.now = func() time.Time { return now }
	if b.Withdraw() {
		t.Fatal("an empty budget allowed a retry")
	}
	b.Deposit()
	if b.Withdraw() {
		t.Fatal("half a deposit allowed a retry")
	}
	b.Deposit()
	if !b.Withdraw() {
		t.Fatal("two deposits at ratio 0.5 did not allow a retry")
	}
	if b.Withdraw() {
		t.Fatal("the budget allowed more than it held")
	}
	b.Deposit()
	b.Deposit()
	now = now.Add(11 * time.Second) // the deposits leave the window
	if b.Withdraw() {
		t.Fatal("expired deposits allowed a retry")
	}
	reserve := NewBudget(0, 1, 2*time.Second)
	reserve.now = func() time.Time { return now }
	allowed := 0
	for range 5 {
		if reserve.Withdraw() {
			allowed++
		}
	}
	if allowed != 2 {
		t.Fatalf("1 retry/s over 2s allowed %d retries, want 2", allowed)
	}
}

func FuzzCompile(f *testing.F) {
	seed := &pb.DestinationProfile{Routes: []*pb.Route{
		route("a", all(method(httptypes.HttpMethod_GET), path(`/authors/[^/]*\.json`))),
		route("b", not(anyOfMatch(path(`(`), &pb.RequestMatch{}))),
	}}
	b, _ := proto.Marshal(seed)
	f.Add(b, "GET", "/authors/1.json")
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00}, "POST", "/")
	f.Fuzz(func(t *testing.T, data []byte, m, p string) {
		var dp pb.DestinationProfile
		if proto.Unmarshal(data, &dp) != nil {
			return
		}
		tbl, _ := Compile(&dp, Options{Metrics: metrics.New()})
		if r := tbl.Match(m, p); r != nil {
			r.IsFailure(500, "")
		}
	})
}
