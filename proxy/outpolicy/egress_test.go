package outpolicy

import (
	"context"
	"net/netip"
	"testing"
	"time"

	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// BenchmarkEgressRoute is the per-request cost Egress adds for a destination outside
// the cluster networks that no EgressNetwork governs (the controller answers its plain
// forward): the target lookup and the policy check; compare BenchmarkEgressRouteNone,
// the nil check a proxy without a policy controller makes.
func BenchmarkEgressRoute(b *testing.B) {
	op := scriptedcp.NewOutboundPolicies()
	addr, err := op.Start("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(op.Stop)
	dst := netip.MustParseAddrPort("203.0.113.7:443")
	op.Set(dst.String(), &pb.OutboundPolicy{Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "default"}},
		Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: &pb.ProxyProtocol_Opaque{}}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := startWatcher(b, addr).Egress(ctx, 10*time.Second, nil)
	be := &forward.Backend{Name: dst.String()}
	if got := e.Route(ctx, dst, be); got != be {
		b.Fatalf("an ungoverned destination got %+v", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Route(ctx, dst, be)
	}
}

// BenchmarkEgressRouteNone is the check of a proxy without Egress.
func BenchmarkEgressRouteNone(b *testing.B) {
	var e *Egress
	be := &forward.Backend{}
	b.ReportAllocs()
	for b.Loop() {
		if e != nil {
			be = e.Route(context.Background(), netip.AddrPort{}, be)
		}
	}
}

// TestWatchAnswerWithoutRoutes: an answer that compiles to no policy (an opaque protocol
// without routes) leaves the target without one instead of crashing the watch.
func TestWatchAnswerWithoutRoutes(t *testing.T) {
	op := scriptedcp.NewOutboundPolicies()
	addr, err := op.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Stop)
	op.Set(web, &pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: &pb.ProxyProtocol_Opaque{}}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cur := startWatcher(t, addr).Watch(ctx, netip.AddrPort{}, web)
	if err := cur.WaitReady(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if p := cur.Load(); p != nil {
		t.Fatalf("policy %+v, want none", p)
	}
}
