package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// profileRoute builds a ServiceProfile route as the destination controller sends it.
func profileRoute(name string, method httptypes.HttpMethod_Registered, pathRegex string) *destination.Route {
	return &destination.Route{
		MetricsLabels: map[string]string{"route": name},
		Condition: &destination.RequestMatch{Match: &destination.RequestMatch_All{All: &destination.RequestMatch_Seq{Matches: []*destination.RequestMatch{
			{Match: &destination.RequestMatch_Method{Method: &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Registered_{Registered: method}}}},
			{Match: &destination.RequestMatch_Path{Path: &destination.PathMatch{Regex: pathRegex}}},
		}}}},
	}
}

// routeApp is the application behind svc:
//   - /flaky fails every other request with 500 and echoes the body of the others;
//   - /broken always fails;
//   - /slow answers only once the request is cancelled (it reports that on cancelled);
//   - /unbounded answers after 400ms, longer than /slow's timeout.
type routeApp struct {
	flaky, broken atomic.Int64
	cancelled     chan struct{}
}

func (a *routeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case "/flaky":
		if a.flaky.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "flaked")
			return
		}
		fmt.Fprintf(w, "ok:%s", body)
	case "/broken":
		a.broken.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	case "/slow":
		<-r.Context().Done()
		a.cancelled <- struct{}{}
	case "/unbounded":
		time.Sleep(400 * time.Millisecond)
		io.WriteString(w, "unbounded")
	default:
		io.WriteString(w, "default")
	}
}

// routedProxy starts an app and an outbound proxy whose control plane gives svc the
// profile routes, with the given retry budget (nil: Linkerd's default).
func routedProxy(t *testing.T, budget *destination.RetryBudget) (*routeApp, *Proxy, netip.AddrPort) {
	t.Helper()
	app := &routeApp{cancelled: make(chan struct{}, 16)}
	addr, _ := serveHTTP(t, app)
	d, cp := startDestination(t)
	d.Set(svc, scriptedcp.Endpoint{Addr: addr})
	flaky := profileRoute("POST /flaky", httptypes.HttpMethod_POST, "/flaky")
	flaky.IsRetryable = true
	getFlaky := profileRoute("GET /flaky", httptypes.HttpMethod_GET, "/flaky")
	getFlaky.IsRetryable = true
	broken := profileRoute("GET /broken", httptypes.HttpMethod_GET, "/broken")
	broken.IsRetryable = true
	slow := profileRoute("GET /slow", httptypes.HttpMethod_GET, "/slow")
	slow.Timeout = durationpb.New(200 * time.Millisecond)
	d.SetProfile(svc, &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local.",
		Routes:      []*destination.Route{flaky, getFlaky, broken, slow, profileRoute("GET /unbounded", httptypes.HttpMethod_GET, "/unbounded")},
		RetryBudget: budget})
	p := startProxy(t, unreachable, netip.AddrPort{}, map[string]string{config.EnvDestinationAddr: cp}, nil)
	_, out, _ := p.Addrs()
	return app, p, out
}

const routeLabels = `direction="outbound",dst="web.ns.svc.cluster.local:80",rt_route=`

func metricValue(t *testing.T, p *Proxy, series string) string {
	t.Helper()
	for line := range strings.SplitSeq(scrape(t, p), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return "absent"
}

// TestRetryableRouteMasksFailures: a route failing every other request succeeds every
// time with retries, over the HTTP/1 fast path and over HTTP/2, bodies included; route
// metrics show the effective and the actual success rate and the retries.
func TestRetryableRouteMasksFailures(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			app, p, out := routedProxy(t, nil)
			c := clientTo(out, h2)
			for i := range 10 {
				want := fmt.Sprint("ok:body-", i)
				resp, err := c.Post("http://"+svc+"/flaky", "text/plain", strings.NewReader(fmt.Sprint("body-", i)))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != want {
					t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, b, want)
				}
				resp, body := get(t, c, "http://"+svc+"/flaky")
				if resp.StatusCode != 200 || body != "ok:" {
					t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
				}
			}
			if n := app.flaky.Load(); n != 40 {
				t.Errorf("the app saw %d requests, want 40 (20 failed, 20 retried)", n)
			}
			for series, want := range map[string]string{
				`route_request_total{` + routeLabels + `"POST /flaky"}`:                                                    "10",
				`route_response_total{` + routeLabels + `"POST /flaky",status_code="200",classification="success"}`:        "10",
				`route_actual_request_total{` + routeLabels + `"POST /flaky"}`:                                             "20",
				`route_actual_response_total{` + routeLabels + `"POST /flaky",status_code="500",classification="failure"}`: "10",
				`route_retry_total{` + routeLabels + `"POST /flaky"}`:                                                      "10",
				`route_retry_total{` + routeLabels + `"GET /flaky"}`:                                                       "10",
				`route_response_total{` + routeLabels + `"GET /flaky",status_code="200",classification="success"}`:         "10",
				`route_response_total{` + routeLabels + `"GET /flaky",status_code="500",classification="failure"}`:         "absent",
				`route_retry_skipped_total{` + routeLabels + `"GET /flaky",reason="budget"}`:                               "0",
			} {
				if got := metricValue(t, p, series); got != want {
					t.Errorf("%s = %s, want %s", series, got, want)
				}
			}
		})
	}
}

// TestRetryBudgetLimitsRetries: with a budget of half the requests and no free retries,
// an always-failing retryable route is retried for every other request only, and each
// request's last failure is counted as not retried for lack of budget.
func TestRetryBudgetLimitsRetries(t *testing.T) {
	app, p, out := routedProxy(t, &destination.RetryBudget{RetryRatio: 0.5, MinRetriesPerSecond: 0, Ttl: durationpb.New(time.Minute)})
	c := clientTo(out, false)
	for i := range 10 {
		if resp, _ := get(t, c, "http://"+svc+"/broken"); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("request %d: status %d, want the app's 503", i, resp.StatusCode)
		}
	}
	if n := app.broken.Load(); n != 15 {
		t.Errorf("the app saw %d requests, want 15 (10 plus 5 budgeted retries)", n)
	}
	for series, want := range map[string]string{
		`route_retry_total{` + routeLabels + `"GET /broken"}`:                                                      "5",
		`route_retry_skipped_total{` + routeLabels + `"GET /broken",reason="budget"}`:                              "10",
		`route_response_total{` + routeLabels + `"GET /broken",status_code="503",classification="failure"}`:        "10",
		`route_actual_response_total{` + routeLabels + `"GET /broken",status_code="503",classification="failure"}`: "15",
	} {
		if got := metricValue(t, p, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
}

// TestRouteTimeout: a request on a route with a timeout is answered 504 by the proxy
// when the app does not answer in time, and the app's request is cancelled; a slower
// request on another route is not cut short.
func TestRouteTimeout(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			app, p, out := routedProxy(t, nil)
			c := clientTo(out, h2)
			resp, body := get(t, c, "http://"+svc+"/slow")
			if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("L5d-Proxy-Error") != "request timed out" {
				t.Fatalf("slow route: %d %q (%s), want 504 request timed out", resp.StatusCode, resp.Header.Get("L5d-Proxy-Error"), body)
			}
			select {
			case <-app.cancelled:
			case <-time.After(10 * time.Second):
				t.Fatal("the app's request was not cancelled")
			}
			if resp, body := get(t, c, "http://"+svc+"/unbounded"); resp.StatusCode != 200 || body != "unbounded" {
				t.Fatalf("route without timeout: %d %q", resp.StatusCode, body)
			}
			if got := metricValue(t, p, `route_response_total{`+routeLabels+`"GET /slow",status_code="504",classification="failure"}`); got != "1" {
				t.Errorf("504s recorded on the slow route: %s", got)
			}
			if got := metricValue(t, p, `route_response_total{`+routeLabels+`"GET /unbounded",status_code="200",classification="success"}`); got != "1" {
				t.Errorf("200s recorded on the unbounded route: %s", got)
			}
		})
	}
}

// TestGRPCRoutes: over gRPC, a timed-out call ends with DEADLINE_EXCEEDED from the proxy,
// and a call failing every other time succeeds through retries.
func TestGRPCRoutes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		var in emptypb.Empty
		if err := stream.RecvMsg(&in); err != nil {
			return err
		}
		switch method {
		case "/test.Routes/Wait":
			<-stream.Context().Done()
			return stream.Context().Err()
		case "/test.Routes/Flaky":
			if calls.Add(1)%2 == 1 {
				return status.Error(codes.Unavailable, "flaked")
			}
		}
		return stream.SendMsg(&emptypb.Empty{})
	}))
	go srv.Serve(ln)
	defer srv.Stop()
	d, cp := startDestination(t)
	d.Set(svc, scriptedcp.Endpoint{Addr: ln.Addr().(*net.TCPAddr).AddrPort()})
	wait := profileRoute("Wait", httptypes.HttpMethod_POST, `/test\.Routes/Wait`)
	wait.Timeout = durationpb.New(200 * time.Millisecond)
	flaky := profileRoute("Flaky", httptypes.HttpMethod_POST, `/test\.Routes/Flaky`)
	flaky.IsRetryable = true
	d.SetProfile(svc, &destination.DestinationProfile{Routes: []*destination.Route{wait, flaky}})
	p := startProxy(t, unreachable, netip.AddrPort{}, map[string]string{config.EnvDestinationAddr: cp}, nil)
	_, out, _ := p.Addrs()
	conn, err := grpc.NewClient("passthrough:///"+svc,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", out.String())
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = conn.Invoke(ctx, "/test.Routes/Wait", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "request timed out") {
		t.Fatalf("timed-out call: %v, want DEADLINE_EXCEEDED from the proxy", err)
	}
	for i := range 6 {
		if err := conn.Invoke(ctx, "/test.Routes/Flaky", &emptypb.Empty{}, &emptypb.Empty{}); err != nil {
			t.Fatalf("flaky call %d: %v", i, err)
		}
	}
	if got := metricValue(t, p, `route_retry_total{`+routeLabels+`"Flaky"}`); got != "6" {
		t.Errorf("gRPC retries: %s, want 6", got)
	}
}

// BenchmarkProfileRoutesHTTP1 measures the outbound proxy alone (client -> proxy -> app,
// HTTP/1 keep-alive) for a discovered service: without a ServiceProfile, with a profile
// route that only adds route metrics (the fast path), and with a route timeout or retries
// (the general client, which allocates).
func BenchmarkProfileRoutesHTTP1(b *testing.B) {
	for _, c := range []struct {
		name  string
		route func() *destination.Route
	}{
		{"no-profile", nil},
		{"route-metrics", func() *destination.Route { return profileRoute("GET /", httptypes.HttpMethod_GET, "/") }},
		{"route-timeout", func() *destination.Route {
			r := profileRoute("GET /", httptypes.HttpMethod_GET, "/")
			r.Timeout = durationpb.New(10 * time.Second)
			return r
		}},
		{"route-retries", func() *destination.Route {
			r := profileRoute("GET /", httptypes.HttpMethod_GET, "/")
			r.IsRetryable = true
			return r
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := scriptedcp.NewDestination()
			cp, err := d.Start("127.0.0.1:0", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Stop()
			d.Set(svc, scriptedcp.Endpoint{Addr: benchApp(b)})
			if c.route != nil {
				d.SetProfile(svc, &destination.DestinationProfile{Routes: []*destination.Route{c.route()}})
			}
			p := startProxy(b, unreachable, netip.AddrPort{}, map[string]string{config.EnvDestinationAddr: cp}, nil)
			_, out, _ := p.Addrs()
			cl := clientTo(out, false)
			if resp, err := cl.Get("http://" + svc + "/"); err != nil || resp.StatusCode != 200 {
				b.Fatalf("warm-up: %v", err)
			} else {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
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

// TestLargeBodiesAreNotRetried: a request whose body is over 64 KiB is not kept for a
// retry, so its failure reaches the client, over HTTP/1 and HTTP/2.
func TestLargeBodiesAreNotRetried(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			app, p, out := routedProxy(t, nil)
			c := clientTo(out, h2)
			big := strings.Repeat("x", 100<<10)
			resp, err := c.Post("http://"+svc+"/flaky", "text/plain", strings.NewReader(big))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusInternalServerError {
				t.Fatalf("status %d, want the app's 500", resp.StatusCode)
			}
			// Small bodies are retried: the app fails every other request.
			for range 2 {
				resp, err = c.Post("http://"+svc+"/flaky", "text/plain", strings.NewReader("small"))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "ok:small" {
					t.Fatalf("small body: %d %q", resp.StatusCode, b)
				}
			}
			if n := app.flaky.Load(); n != 4 {
				t.Errorf("the app saw %d requests, want 4 (big, small, small failed and retried)", n)
			}
			for series, want := range map[string]string{
				`route_retry_total{` + routeLabels + `"POST /flaky"}`:                                               "1",
				`route_response_total{` + routeLabels + `"POST /flaky",status_code="500",classification="failure"}`: "1",
				`route_response_total{` + routeLabels + `"POST /flaky",status_code="200",classification="success"}`: "2",
			} {
				if got := metricValue(t, p, series); got != want {
					t.Errorf("%s = %s, want %s", series, got, want)
				}
			}
		})
	}
}
