package inpolicy

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"

	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/meta"
)

// fakeController answers WatchPort with what the test sends on answers; watches receives
// the port of each watch opened.
type fakeController struct {
	pb.InboundServerPoliciesClient // GetPort: not used by the watcher
	answers                        chan *pb.Server
	watches                        chan uint32
}

func (f *fakeController) WatchPort(ctx context.Context, in *pb.PortSpec, _ ...grpc.CallOption) (grpc.ServerStreamingClient[pb.Server], error) {
	f.watches <- in.GetPort()
	return &fakeStream{ctx: ctx, answers: f.answers}, nil
}

type fakeStream struct {
	grpc.ClientStream
	ctx     context.Context
	answers chan *pb.Server
}

func (s *fakeStream) Recv() (*pb.Server, error) {
	select {
	case a := <-s.answers:
		return a, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

// TestWatcherHoldsUntilTheFirstAnswer: with a controller, a port's policy is not the
// default before the controller answers: the caller is held until the answer comes, and
// gets Unavailable (which refuses everyone) if it does not come in time.
func TestWatcherHoldsUntilTheFirstAnswer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fc := &fakeController{answers: make(chan *pb.Server), watches: make(chan uint32, 10)}
	w := NewWatcher(ctx, fc, "ns:pod", Default("all-unauthenticated", nil), nil)
	w.Wait = time.Hour

	got := make(chan *Port, 1)
	go func() { got <- w.Port(8080) }()
	if port := <-fc.watches; port != 8080 {
		t.Fatalf("watching port %d", port)
	}
	select {
	case p := <-got:
		t.Fatalf("the policy was given before the controller answered: %s", p.Server)
	default:
	}
	fc.answers <- &pb.Server{Labels: map[string]string{"kind": "server", "name": "deny-all"}}
	p := <-got
	if p.Server != "deny-all" {
		t.Fatalf("policy %q, want the controller's deny-all", p.Server)
	}
	if _, ok := p.Allow(netip.MustParseAddr("10.0.0.1"), ""); ok {
		t.Fatal("deny-all admits a client")
	}
	if !w.Known(8080) || w.WaitKnown(ctx, []uint16{8080}) != nil {
		t.Fatal("the answered port is not known")
	}

	// A controller that does not answer: the wait is bounded and the port refuses.
	w2 := NewWatcher(ctx, fc, "ns:pod", Default("all-unauthenticated", nil), nil)
	w2.Wait = time.Millisecond
	if p := w2.Port(9090); p != Unavailable {
		t.Fatalf("an unanswered port's policy is %q, want Unavailable", p.Server)
	}
	<-fc.watches
	if _, ok := Unavailable.Allow(netip.MustParseAddr("127.0.0.1"), "client.ns.serviceaccount.identity.linkerd.cluster.local"); ok {
		t.Fatal("Unavailable admits a client")
	}
	if w2.Known(9090) {
		t.Fatal("an unanswered port is known")
	}
	wctx, wcancel := context.WithCancel(ctx)
	wcancel()
	if err := w2.WaitKnown(wctx, []uint16{9090}); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitKnown of an unanswered port: %v", err)
	}

	// Without a controller the default policy applies at once.
	w3 := NewWatcher(ctx, nil, "ns:pod", Default("all-unauthenticated", nil), nil)
	if p := w3.Port(80); p.Server != "all-unauthenticated" || !w3.Known(80) {
		t.Fatalf("without a controller: %q", p.Server)
	}
}

// TestOpaqueFallback: only an opaque port, or a detecting one without routes of its own,
// may serve what is not HTTP as opaque TCP.
func TestOpaqueFallback(t *testing.T) {
	userRoute := &pb.HttpRoute{Metadata: &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{Kind: "HTTPRoute", Name: "public"}}},
		Rules: []*pb.HttpRoute_Rule{{}}}
	defaultRoute := &pb.HttpRoute{Metadata: &meta.Metadata{Kind: &meta.Metadata_Default{Default: "default"}}, Rules: []*pb.HttpRoute_Rule{{}}}
	probeRoute := &pb.HttpRoute{Metadata: &meta.Metadata{Kind: &meta.Metadata_Default{Default: "probe"}}, Rules: []*pb.HttpRoute_Rule{{}}}
	detect := func(routes ...*pb.HttpRoute) *pb.ProxyProtocol {
		return &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{HttpRoutes: routes}}}
	}
	for _, tc := range []struct {
		name  string
		proto *pb.ProxyProtocol
		want  bool
	}{
		{"no protocol", nil, true},
		{"opaque", &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: &pb.ProxyProtocol_Opaque{}}}, true},
		{"detect without routes", detect(), true},
		{"detect with the default and probe routes", detect(defaultRoute, probeRoute), true},
		{"detect with a route of its own", detect(probeRoute, userRoute), false},
		{"HTTP/1", &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Http1_{Http1: &pb.ProxyProtocol_Http1{}}}, false},
		{"HTTP/2", &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Http2_{Http2: &pb.ProxyProtocol_Http2{}}}, false},
		{"gRPC", &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Grpc_{Grpc: &pb.ProxyProtocol_Grpc{}}}, false},
	} {
		p, err := FromProto(&pb.Server{Labels: map[string]string{"kind": "server", "name": "s"}, Protocol: tc.proto})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.OpaqueFallback(); got != tc.want {
			t.Errorf("%s: OpaqueFallback() = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !Default("all-unauthenticated", nil).OpaqueFallback() || !Unavailable.OpaqueFallback() {
		t.Error("a default policy without routes of its own must fall back (its authorizations decide)")
	}
}

// TestWatcherDefaultUntilKnown: a control-plane proxy's watcher applies the default policy
// until the controller answers, without holding anyone, then the answer.
func TestWatcherDefaultUntilKnown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fc := &fakeController{answers: make(chan *pb.Server), watches: make(chan uint32, 10)}
	w := NewWatcher(ctx, fc, "linkerd:destination", Default("all-unauthenticated", nil), nil)
	w.Wait, w.DefaultUntilKnown = time.Hour, true
	if p := w.Port(8090); p.Server != "all-unauthenticated" || !w.Known(8090) || w.WaitKnown(ctx, []uint16{8090}) != nil {
		t.Fatalf("before the answer: %q", p.Server)
	}
	<-fc.watches
	fc.answers <- &pb.Server{Labels: map[string]string{"kind": "server", "name": "deny-all"}}
	deadline := time.Now().Add(10 * time.Second)
	for w.Port(8090).Server != "deny-all" {
		if time.Now().After(deadline) {
			t.Fatal("the answer never applied")
		}
		time.Sleep(time.Millisecond)
	}
}
