package discovery

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
	"github.com/l5d-go/l5d/proxy/metrics"
)

func setup(t *testing.T, idle time.Duration) (*scriptedcp.Destination, string, *Resolver, *metrics.Registry) {
	t.Helper()
	return setupWith(t, Options{IdleTimeout: idle})
}

// setupWith starts a scripted Destination service and a resolver with opts (Client,
// Metrics, backoff and Log filled in).
func setupWith(t *testing.T, opts Options) (*scriptedcp.Destination, string, *Resolver, *metrics.Registry) {
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
	opts.Client, opts.Metrics, opts.Log = destination.NewDestinationClient(cc), reg, slog.New(slog.DiscardHandler)
	opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	r := New(opts)
	t.Cleanup(r.Close)
	return d, addr, r, reg
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func addrsOf(r *Resolver, name string) []string {
	be, ok, err := r.Name(context.Background(), name)
	if !ok || err != nil {
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
	be, _, _ := r.Name(context.Background(), name)
	ep := be.Balancer.Endpoints()[0]
	if !ep.Value.H2 {
		t.Error("h2 hint lost")
	}
	if id := r.Identity(ap("10.0.0.1:8080")); id != "web.ns.serviceaccount.identity.linkerd.cluster.local" {
		t.Errorf("identity %q", id)
	}
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.1:8080"), Identity: "web.ns.serviceaccount.identity.linkerd.cluster.local", H2: true,
		Labels: map[string]string{"pod": "web-1"}}, scriptedcp.Endpoint{Addr: ap("10.0.0.2:8080")})
	eventually.True(t, "second endpoint", func() bool { return len(addrsOf(r, name)) == 2 })
	if r.Identity(ap("10.0.0.2:8080")) != "" {
		t.Error("endpoint without identity got one")
	}
	// Unchanged endpoints keep their balancer state across updates.
	be2, _, _ := r.Name(context.Background(), name)
	if !slices.Contains(be2.Balancer.Endpoints(), ep) {
		t.Error("unchanged endpoint was replaced by an update")
	}
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.2:8080")})
	eventually.True(t, "removal", func() bool { return slices.Equal(addrsOf(r, name), []string{"10.0.0.2:8080"}) })
	eventually.True(t, "identity release", func() bool { return r.Identity(ap("10.0.0.1:8080")) == "" })

}

func TestUnknownNameIsNotResolved(t *testing.T) {
	_, _, r, _ := setup(t, time.Minute)
	if _, ok, err := r.Name(context.Background(), "nothing.ns.svc.cluster.local:80"); ok || err != nil {
		t.Fatalf("a name the control plane says is not a service: ok=%v err=%v, want ok=false and no error", ok, err)
	}
}

func TestEmptyServiceIsKnown(t *testing.T) {
	d, _, r, _ := setup(t, time.Minute)
	d.Set("empty.ns.svc.cluster.local:80")
	be, ok, err := r.Name(context.Background(), "empty.ns.svc.cluster.local:80")
	if !ok || err != nil || len(be.Balancer.Endpoints()) != 0 {
		t.Fatalf("empty service: ok=%v err=%v", ok, err)
	}
}

func TestOneSharedStreamDroppedWhenIdle(t *testing.T) {
	d, _, r, _ := setup(t, 200*time.Millisecond)
	const name = "web.ns.svc.cluster.local:80"
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.1:80")})
	for range 50 {
		if _, ok, err := r.Name(context.Background(), name); !ok || err != nil {
			t.Fatalf("not resolved: %v", err)
		}
	}
	if n := d.Streams(name); n != 1 {
		t.Fatalf("%d streams for one target, want 1", n)
	}
	eventually.True(t, "the idle stream to close", func() bool { return d.Streams(name) == 0 })
	if _, ok, err := r.Name(context.Background(), name); !ok || err != nil {
		t.Fatalf("not resolved again after the idle drop: %v", err)
	}
	eventually.True(t, "a new stream", func() bool { return d.Streams(name) == 1 })
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
	eventually.True(t, "stale state", func() bool { return r.Stale() == 2 })
	if got := addrsOf(r, name); !slices.Equal(got, []string{"10.0.0.1:80"}) {
		t.Fatalf("during the outage endpoints are %v, want the last known", got)
	}
	// A new target during the outage waits for the control plane: a request whose
	// context ends first fails, it is not forwarded as "unknown".
	const newName = "new.ns.svc.cluster.local:80"
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok, err := r.Name(ctx, newName); ok || err == nil {
		t.Fatalf("a new target while the control plane is away: ok=%v err=%v, want an error", ok, err)
	}
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.2:80")})
	d.Set(newName, scriptedcp.Endpoint{Addr: ap("10.0.0.3:80")})
	if _, err := d.Start(addr, nil); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "recovery", func() bool { return slices.Equal(addrsOf(r, name), []string{"10.0.0.2:80"}) })
	if got := addrsOf(r, newName); !slices.Equal(got, []string{"10.0.0.3:80"}) {
		t.Fatalf("the new target after recovery: %v", got)
	}
	eventually.True(t, "not stale", func() bool { return r.Stale() == 0 })
}

func TestAddrThroughProfile(t *testing.T) {
	d, _, r, _ := setup(t, time.Minute)
	d.Set("web.ns.svc.cluster.local:80", scriptedcp.Endpoint{Addr: ap("10.0.0.1:80")})
	d.SetProfile("10.96.0.10:80", &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local."})
	d.SetProfile("10.0.0.9:80", &destination.DestinationProfile{OpaqueProtocol: true,
		Endpoint: scriptedcp.WeightedAddr(scriptedcp.Endpoint{Addr: ap("10.0.0.9:80"), Identity: "pod.id"})})
	be, ok, err := r.Addr(context.Background(), ap("10.96.0.10:80"))
	if !ok || err != nil || be.Name != "web.ns.svc.cluster.local:80" {
		t.Fatalf("ClusterIP resolved to %v %v %v", be, ok, err)
	}
	be, ok, err = r.Addr(context.Background(), ap("10.0.0.9:80"))
	if !ok || err != nil || len(be.Balancer.Endpoints()) != 1 || r.Identity(ap("10.0.0.9:80")) != "pod.id" {
		t.Fatalf("pod address: ok=%v err=%v", ok, err)
	}
	if !r.Opaque(context.Background(), ap("10.0.0.9:80")) {
		t.Error("opaque profile not reported")
	}
	if r.Opaque(context.Background(), ap("10.96.0.10:80")) {
		t.Error("a service without the opaque hint reported opaque")
	}
	if _, ok, err := r.Addr(context.Background(), ap("192.0.2.1:80")); ok || err != nil {
		t.Errorf("an address with no service: ok=%v err=%v, want ok=false and no error", ok, err)
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
	be, ok, _ := r.Addr(context.Background(), ap("10.96.0.10:80"))
	if !ok || be.Routes.Load().Match("GET", "/a").Name != "by-addr" {
		t.Fatalf("address backend: ok=%v routes %v", ok, be.Routes)
	}
	be, ok, _ = r.Name(context.Background(), name)
	if !ok || be.Routes.Load().Match("GET", "/n").Name != "by-name" || be.Routes.Load().Len() != 1 {
		t.Fatalf("name backend: ok=%v routes %v", ok, be.Routes)
	}
	if again, _, _ := r.Name(context.Background(), name); again != be {
		t.Error("the backend with routes is rebuilt per request")
	}
	// A profile that loses its routes gives the plain backend back.
	d.SetProfile(name, &destination.DestinationProfile{})
	eventually.True(t, "the routes to go", func() bool {
		be, _, _ := r.Name(context.Background(), name)
		return be.Routes == nil
	})
}

// TestNoAnswerFailsRatherThanForwards: while the control plane holds its first answer
// for a name, a request waits the resolve timeout and fails (failfast); later requests
// fail at once; none is told "not a service" (which would forward it in plaintext).
// Once the answer comes, the name resolves.
func TestNoAnswerFailsRatherThanForwards(t *testing.T) {
	d, _, r, _ := setupWith(t, Options{IdleTimeout: time.Minute, ResolveTimeout: 50 * time.Millisecond})
	const name = "web.ns.svc.cluster.local:80"
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.1:80")})
	d.SetProfile("10.96.0.10:80", &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local."})
	d.Hold()
	if _, ok, err := r.Name(context.Background(), name); ok || !errors.Is(err, balance.ErrFailfast) {
		t.Fatalf("first request without an answer: ok=%v err=%v, want balance.ErrFailfast", ok, err)
	}
	if _, ok, err := r.Name(context.Background(), name); ok || !errors.Is(err, balance.ErrUnavailable) {
		t.Fatalf("next request without an answer: ok=%v err=%v, want balance.ErrUnavailable", ok, err)
	}
	if _, ok, err := r.Addr(context.Background(), ap("10.96.0.10:80")); ok || !errors.Is(err, balance.ErrFailfast) {
		t.Fatalf("an address without an answer: ok=%v err=%v, want balance.ErrFailfast", ok, err)
	}
	d.Release()
	eventually.True(t, "the name to resolve", func() bool { return slices.Equal(addrsOf(r, name), []string{"10.0.0.1:80"}) })
	eventually.True(t, "the address to resolve", func() bool {
		be, ok, err := r.Addr(context.Background(), ap("10.96.0.10:80"))
		return ok && err == nil && be.Name == name
	})
}

// TestStreamBrokenBeforeAnswerKeepsWaiting: a request for a new name waits through a
// control plane that breaks its stream before answering (a destination pod not ready
// yet) and gets the endpoints once it answers.
func TestStreamBrokenBeforeAnswerKeepsWaiting(t *testing.T) {
	d, addr, r, _ := setup(t, time.Minute)
	const name = "web.ns.svc.cluster.local:80"
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.1:80")})
	d.Hold()
	type result struct {
		be  []string
		err error
	}
	done := make(chan result, 1)
	go func() {
		be, ok, err := r.Name(context.Background(), name)
		var addrs []string
		if ok {
			for _, e := range be.Balancer.Endpoints() {
				addrs = append(addrs, e.Addr.String())
			}
		}
		done <- result{addrs, err}
	}()
	eventually.True(t, "the request's stream to wait for an answer", func() bool { return d.Held() > 0 })
	d.Stop() // the stream breaks with no answer
	d.Release()
	if _, err := d.Start(addr, nil); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || !slices.Equal(got.be, []string{"10.0.0.1:80"}) {
		t.Fatalf("request across a broken first stream: endpoints %v, error %v", got.be, got.err)
	}
}

// TestHeldProfileSurvivesSweeps: an address held by an open connection keeps its
// GetProfile stream, and the service it names keeps its Get and GetProfile streams, long
// past the idle timeout with no requests, while an address nobody holds is dropped. Once
// released, the held streams are dropped after the idle timeout too.
func TestHeldProfileSurvivesSweeps(t *testing.T) {
	d, _, r, _ := setup(t, 200*time.Millisecond)
	const name = "web.ns.svc.cluster.local:80"
	held, unused := ap("10.96.0.10:80"), ap("10.96.0.11:80")
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.1:80")})
	d.SetProfile(held.String(), &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local."})
	release := r.Hold(held)
	if r.Opaque(context.Background(), held) {
		t.Fatal("the held address reported opaque")
	}
	// A connection's requests route by the service name.
	if got := addrsOf(r, name); !slices.Equal(got, []string{"10.0.0.1:80"}) {
		t.Fatalf("endpoints %v", got)
	}
	// Each unused address is looked up and released after the one before it was dropped,
	// so by the second drop the sweep that dropped the first, with everything last used
	// before it, has finished.
	for _, a := range []netip.AddrPort{unused, ap("10.96.0.12:80")} {
		rel := r.Hold(a)
		r.Opaque(context.Background(), a) // its stream has answered
		rel()
		eventually.True(t, "the unused address to be dropped", func() bool { return d.ProfileStreams(a.String()) == 0 })
	}
	if n, g, np := d.ProfileStreams(held.String()), d.Streams(name), d.ProfileStreams(name); n != 1 || g != 1 || np != 1 {
		t.Fatalf("while held: %d profile streams for the address, %d Get and %d GetProfile streams for its service; want 1 each", n, g, np)
	}
	release()
	eventually.True(t, "the released address and its service to be dropped", func() bool {
		return d.ProfileStreams(held.String()) == 0 && d.Streams(name) == 0 && d.ProfileStreams(name) == 0
	})
}

// TestRefusalsAreNotServices: the codes Linkerd's destination (and l5d's) answers for what
// is not a Service, InvalidArgument (an IP, a name outside the cluster, an ExternalName
// Service) and NotFound (a Service that does not exist), make the target unknown: the
// proxy forwards to the original destination at once instead of failing the request
// after the resolve timeout.
func TestRefusalsAreNotServices(t *testing.T) {
	d, _, r, _ := setupWith(t, Options{IdleTimeout: time.Minute, ResolveTimeout: time.Hour})
	d.Refuse("missing.ns.svc.cluster.local:80", codes.NotFound)
	d.Refuse("example.com:443", codes.InvalidArgument)
	d.Refuse("192.0.2.7:8080", codes.InvalidArgument)
	for _, name := range []string{"missing.ns.svc.cluster.local:80", "example.com:443"} {
		if _, ok, err := r.Name(context.Background(), name); ok || err != nil {
			t.Errorf("Get %s refused: ok=%v err=%v, want ok=false and no error", name, ok, err)
		}
	}
	if _, ok, err := r.Addr(context.Background(), ap("192.0.2.7:8080")); ok || err != nil {
		t.Errorf("GetProfile of an address refused: ok=%v err=%v, want ok=false and no error", ok, err)
	}
}

// TestAuthorityOverride: an endpoint's authority_override (a multicluster gateway's)
// reaches its forwarding state, lower-cased; one that is not name:port, or on an endpoint
// without a mesh identity, is ignored; a change of override replaces the endpoint.
func TestAuthorityOverride(t *testing.T) {
	d, _, r, _ := setup(t, time.Minute)
	const name = "web-east.ns.svc.cluster.local:8080"
	const gwID = "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
	override := func() map[string]string {
		be, _, err := r.Name(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, e := range be.Balancer.Endpoints() {
			got[e.Addr.String()] = e.Value.AuthorityOverride
		}
		return got
	}
	d.Set(name,
		scriptedcp.Endpoint{Addr: ap("10.1.0.1:4143"), Identity: gwID, H2: true, AuthorityOverride: "Web.NS.svc.cluster.local:8080"},
		scriptedcp.Endpoint{Addr: ap("10.1.0.2:4143"), AuthorityOverride: "web.ns.svc.cluster.local:8080"},
		scriptedcp.Endpoint{Addr: ap("10.1.0.3:4143"), Identity: gwID, AuthorityOverride: "web.ns.svc.cluster.local"})
	want := map[string]string{"10.1.0.1:4143": "web.ns.svc.cluster.local:8080", "10.1.0.2:4143": "", "10.1.0.3:4143": ""}
	if got := override(); !maps.Equal(got, want) {
		t.Fatalf("overrides %v, want %v", got, want)
	}
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.1.0.1:4143"), Identity: gwID, H2: true, AuthorityOverride: "web.other.svc.cluster.local:8080"})
	eventually.True(t, "the new override", func() bool {
		return maps.Equal(override(), map[string]string{"10.1.0.1:4143": "web.other.svc.cluster.local:8080"})
	})
}

// TestPendingTargetIsKeptWhileARequestWaits: a request waits for the first answer for a
// name longer than the idle timeout (the control plane is slow): the sweeper must not
// drop the name's stream meanwhile, or the answer never comes and the request fails at
// the resolve timeout. Once the control plane answers, the request gets the endpoints.
func TestPendingTargetIsKeptWhileARequestWaits(t *testing.T) {
	d, _, r, _ := setupWith(t, Options{IdleTimeout: 20 * time.Millisecond, ResolveTimeout: eventually.Timeout})
	const name = "web.ns.svc.cluster.local:80"
	d.Set(name, scriptedcp.Endpoint{Addr: ap("10.0.0.1:80")})
	d.Hold()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	type result struct {
		addrs []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		be, ok, err := r.Name(ctx, name)
		res := result{err: err}
		if ok {
			for _, e := range be.Balancer.Endpoints() {
				res.addrs = append(res.addrs, e.Addr.String())
			}
		}
		done <- res
	}()
	eventually.True(t, "the request's stream at the control plane", func() bool { return d.Streams(name) == 1 })
	// A stream started after the request's: once the sweeper has dropped it as idle, it
	// has also looked at the request's target, idle at least as long.
	sentinel := ap("10.9.9.9:80")
	r.Hold(sentinel)()
	eventually.True(t, "the sweeper to drop an idle stream", func() bool {
		_, ok := r.profiles.Load(sentinel)
		return !ok
	})
	if _, ok := r.names.Load(name); !ok {
		t.Fatal("the sweeper dropped the stream a request is waiting on")
	}
	d.Release()
	select {
	case res := <-done:
		if res.err != nil || !slices.Equal(res.addrs, []string{"10.0.0.1:80"}) {
			t.Fatalf("the waiting request got %v %v, want the endpoint", res.addrs, res.err)
		}
	case <-time.After(eventually.Timeout):
		t.Fatal("the waiting request never returned")
	}
}
