package discovery

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
	"github.com/l5d-go/l5d/proxy/metrics"
)

func setup(t *testing.T, idle time.Duration) (*scriptedcp.Destination, string, *Resolver, *metrics.Registry) {
	t.Helper()
	d := scriptedcp.NewDestination()
	addr, err := d.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	reg := metrics.New()
	r := New(Options{Client: destination.NewDestinationClient(cc), IdleTimeout: idle, Metrics: reg,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	t.Cleanup(r.Close)
	return d, addr, r, reg
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func addrsOf(r *Resolver, name string) []string {
	be, ok := r.Name(context.Background(), name)
	if !ok {
		return nil
	}
	var out []string
	for _, e := range be.Balancer.Endpoints() {
		out = append(out, e.Addr.String())
	}
	slices.Sort(out)
	return out
}

func TestNameFollowsUpdates(t *testing.T) {
	d, _, r, _ := setup(t, time.Minute)
	const name = "web.ns.svc.cluster.local:8080"
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.1:8080"), Identity: "web.ns.serviceaccount.identity.linkerd.cluster.local", H2: true,
		Labels: map[string]string{"pod": "web-1"}})
	if got := addrsOf(r, name); !slices.Equal(got, []string{"10.0.0.1:8080"}) {
		t.Fatalf("endpoints %v", got)
	}
	be, _ := r.Name(context.Background(), name)
	ep := be.Balancer.Endpoints()[0]
	if !ep.Value.H2 {
		t.Error("h2 hint lost")
	}
	if id := r.Identity(ap("10.0.0.1:8080")); id != "web.ns.serviceaccount.identity.linkerd.cluster.local" {
		t.Errorf("identity %q", id)
	}
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.1:8080"), Identity: "web.ns.serviceaccount.identity.linkerd.cluster.local", H2: true,
		Labels: map[string]string{"pod": "web-1"}}, scriptedcp.Endpoint{Addr: ap("10.0.0.2:8080")})
	waitFor(t, "second endpoint", func() bool { return len(addrsOf(r, name)) == 2 })
	if r.Identity(ap("10.0.0.2:8080")) != "" {
		t.Error("endpoint without identity got one")
	}
	// Unchanged endpoints keep their balancer state across updates.
	be2, _ := r.Name(context.Background(), name)
	if !slices.Contains(be2.Balancer.Endpoints(), ep) {
		t.Error("unchanged endpoint was replaced by an update")
	}
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.2:8080")})
	waitFor(t, "removal", func() bool { return slices.Equal(addrsOf(r, name), []string{"10.0.0.2:8080"}) })
	waitFor(t, "identity release", func() bool { return r.Identity(ap("10.0.0.1:8080")) == "" })

}

func TestUnknownNameIsNotResolved(t *testing.T) {
	_, _, r, _ := setup(t, time.Minute)
	if _, ok := r.Name(context.Background(), "nothing.ns.svc.cluster.local:80"); ok {
		t.Fatal("a name the control plane does not know resolved")
	}
}

func TestEmptyServiceIsKnown(t *testing.T) {
	d, _, r, _ := setup(t, time.Minute)
	d.Set("empty.ns.svc.cluster.local:80")
	be, ok := r.Name(context.Background(), "empty.ns.svc.cluster.local:80")
	if !ok || len(be.Balancer.Endpoints()) != 0 {
		t.Fatalf("empty service: ok=%v", ok)
	}
}

func TestOneSharedStreamDroppedWhenIdle(t *testing.T) {
	d, _, r, _ := setup(t, 200*time.Millisecond)
	const name = "web.ns.svc.cluster.local:80"
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.1:80")})
	for range 50 {
		if _, ok := r.Name(context.Background(), name); !ok {
			t.Fatal("not resolved")
		}
	}
	if n := d.Streams(name); n != 1 {
		t.Fatalf("%d streams for one target, want 1", n)
	}
	waitFor(t, "the idle stream to close", func() bool { return d.Streams(name) == 0 })
	if _, ok := r.Name(context.Background(), name); !ok {
		t.Fatal("not resolved again after the idle drop")
	}
	waitFor(t, "a new stream", func() bool { return d.Streams(name) == 1 })
}

func TestOutageKeepsLastStateAndRecovers(t *testing.T) {
	d, addr, r, _ := setup(t, time.Minute)
	const name = "web.ns.svc.cluster.local:80"
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.1:80")})
	if got := addrsOf(r, name); len(got) != 1 {
		t.Fatalf("endpoints %v", got)
	}
	d.Stop()
	// Both streams of the name, Get and GetProfile, serve their last state.
	waitFor(t, "stale state", func() bool { return r.Stale() == 2 })
	if got := addrsOf(r, name); !slices.Equal(got, []string{"10.0.0.1:80"}) {
		t.Fatalf("during the outage endpoints are %v, want the last known", got)
	}
	// A new target during the outage falls back to the original destination.
	if _, ok := r.Name(context.Background(), "new.ns.svc.cluster.local:80"); ok {
		t.Fatal("a new target resolved while the control plane is away")
	}
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.2:80")})
	if _, err := d.Start(addr, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "recovery", func() bool { return slices.Equal(addrsOf(r, name), []string{"10.0.0.2:80"}) })
	waitFor(t, "not stale", func() bool { return r.Stale() == 0 })
}

func TestAddrThroughProfile(t *testing.T) {
	d, _, r, _ := setup(t, time.Minute)
	d.Set("web.ns.svc.cluster.local:80", scriptedcp.Endpoint{Addr: ap("10.0.0.1:80")})
	d.SetProfile("10.96.0.10:80", &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local."})
	d.SetProfile("10.0.0.9:80", &destination.DestinationProfile{OpaqueProtocol: true,
		Endpoint: scriptedcp.WeightedAddr(scriptedcp.Endpoint{Addr: ap("10.0.0.9:80"), Identity: "pod.id"})})
	be, ok := r.Addr(context.Background(), ap("10.96.0.10:80"))
	if !ok || be.Name != "web.ns.svc.cluster.local:80" {
		t.Fatalf("ClusterIP resolved to %v %v", be, ok)
	}
	be, ok = r.Addr(context.Background(), ap("10.0.0.9:80"))
	if !ok || len(be.Balancer.Endpoints()) != 1 || r.Identity(ap("10.0.0.9:80")) != "pod.id" {
		t.Fatalf("pod address: ok=%v", ok)
	}
	if !r.Opaque(context.Background(), ap("10.0.0.9:80")) {
		t.Error("opaque profile not reported")
	}
	if r.Opaque(context.Background(), ap("10.96.0.10:80")) {
		t.Error("a service without the opaque hint reported opaque")
	}
	if _, ok := r.Addr(context.Background(), ap("192.0.2.1:80")); ok {
		t.Error("an address with no service resolved")
	}
}

func TestBackendsCarryProfileRoutes(t *testing.T) {
	d, _, r, _ := setup(t, time.Minute)
	const name = "web.ns.svc.cluster.local:80"
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.1:80")})
	route := func(label, re string) *destination.Route {
		return &destination.Route{MetricsLabels: map[string]string{"route": label},
			Condition: &destination.RequestMatch{Match: &destination.RequestMatch_Path{Path: &destination.PathMatch{Regex: re}}}}
	}
	// The ClusterIP's profile and the name's profile are separate streams.
	d.SetProfile("10.96.0.10:80", &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local.",
		Routes: []*destination.Route{route("by-addr", "/a")}})
	d.SetProfile(name, &destination.DestinationProfile{Routes: []*destination.Route{route("by-name", "/n"), route("bad", "(")}})
	be, ok := r.Addr(context.Background(), ap("10.96.0.10:80"))
	if !ok || be.Routes.Load().Match("GET", "/a").Name != "by-addr" {
		t.Fatalf("address backend: ok=%v routes %v", ok, be.Routes)
	}
	be, ok = r.Name(context.Background(), name)
	if !ok || be.Routes.Load().Match("GET", "/n").Name != "by-name" || be.Routes.Load().Len() != 1 {
		t.Fatalf("name backend: ok=%v routes %v", ok, be.Routes)
	}
	if again, _ := r.Name(context.Background(), name); again != be {
		t.Error("the backend with routes is rebuilt per request")
	}
	// A profile that loses its routes gives the plain backend back.
	d.SetProfile(name, &destination.DestinationProfile{})
	waitFor(t, "the routes to go", func() bool {
		be, _ := r.Name(context.Background(), name)
		return be.Routes == nil
	})
}
