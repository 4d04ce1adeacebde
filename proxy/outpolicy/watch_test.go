package outpolicy

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
	"github.com/l5d-go/l5d/proxy/metrics"
)

const web = "web.ns.svc.cluster.local:80"

func startWatcher(t testing.TB, addr string) *Watcher {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return NewWatcher(Options{Client: pb.NewOutboundPoliciesClient(cc), Metrics: metrics.New(), MaxBackoff: 50 * time.Millisecond})
}

func TestWatchFollowsAndKeepsThePolicy(t *testing.T) {
	op := scriptedcp.NewOutboundPolicies()
	addr, err := op.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	split := detect(&pb.HttpRoute{Metadata: resourceMeta("split"), Rules: []*pb.HttpRoute_Rule{{Backends: first("v2.ns.svc.cluster.local:80")}}})
	op.Set(web, split)
	op.Set("bad.ns.svc.cluster.local:80", detect(&pb.HttpRoute{Rules: []*pb.HttpRoute_Rule{{
		Matches: []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Regex{Regex: "("}}}}}}}))
	w := startWatcher(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cur := w.Watch(ctx, netip.AddrPort{}, web)
	if err := cur.WaitReady(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if p := cur.Load(); p.Trivial() || p.Rules()[0].Name != "split" {
		t.Fatalf("policy %+v, want the split route", p)
	}
	// The controller has nothing for this target: ready, without a policy.
	none := w.Watch(ctx, netip.AddrPort{}, "other.ns.svc.cluster.local:80")
	if err := none.WaitReady(ctx, 10*time.Second); err != nil || none.Load() != nil {
		t.Fatalf("target without a policy: %v %v", none.Load(), err)
	}
	// An answer that does not compile is refused: ready, without a policy.
	bad := w.Watch(ctx, netip.AddrPort{}, "bad.ns.svc.cluster.local:80")
	if err := bad.WaitReady(ctx, 10*time.Second); err != nil || bad.Load() != nil {
		t.Fatalf("invalid policy: %v %v", bad.Load(), err)
	}
	// A changed policy reaches the open watch.
	op.Set(web, detect(defaultRoute()))
	eventually.True(t, "the default route", func() bool { return cur.Load().Trivial() })
	op.Set(web, split)
	eventually.True(t, "the split route again", func() bool { return !cur.Load().Trivial() })
	// The controller goes away: the last policy stays.
	op.Stop()
	later := w.Watch(ctx, netip.AddrPort{}, "late.ns.svc.cluster.local:80")
	if err := later.WaitReady(ctx, 20*time.Millisecond); err == nil {
		t.Fatal("a new target got an answer from a stopped controller")
	}
	if p := cur.Load(); p.Trivial() {
		t.Fatal("the policy was dropped when the controller went away")
	}
}

func TestWaitReadyGivesUpOnce(t *testing.T) {
	w := startWatcher(t, "127.0.0.1:1") // nothing listens there
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cur := w.Watch(ctx, netip.MustParseAddrPort("10.0.0.1:80"), "")
	if err := cur.WaitReady(ctx, 20*time.Millisecond); err == nil {
		t.Fatal("WaitReady succeeded without a controller")
	}
	// Later requests do not wait again: the call returns even with no time left at all.
	done := make(chan error, 1)
	go func() { done <- cur.WaitReady(ctx, time.Hour) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("WaitReady succeeded without a controller")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("WaitReady waited again after giving up once")
	}
}

// TestOpaqueTargetHasNoPolicy: the controller's answer for an opaque Service (no HTTP or
// gRPC protocol) leaves the target ready without routes; it once crashed the proxy.
func TestOpaqueTargetHasNoPolicy(t *testing.T) {
	op := scriptedcp.NewOutboundPolicies()
	addr, err := op.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Stop)
	op.Set(web, &pb.OutboundPolicy{Metadata: resourceMeta("web"),
		Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: &pb.ProxyProtocol_Opaque{}}}})
	w := startWatcher(t, addr)
	cur := w.Watch(t.Context(), netip.AddrPort{}, web)
	if err := cur.WaitReady(t.Context(), 10*time.Second); err != nil || cur.Load() != nil {
		t.Fatalf("opaque target: %v %v", cur.Load(), err)
	}
}
