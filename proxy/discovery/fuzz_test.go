package discovery

import (
	"log/slog"
	"net/netip"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/l5d-go/l5d/proto/gen/destination"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// FuzzApplyUpdate feeds arbitrary Destination updates (control-plane input) to a target:
// nothing panics, and every endpoint in the balancer has a valid address.
func FuzzApplyUpdate(f *testing.F) {
	for _, u := range []*destination.Update{
		{Update: &destination.Update_Add{Add: &destination.WeightedAddrSet{Addrs: []*destination.WeightedAddr{
			scriptedcp.WeightedAddr(scriptedcp.Endpoint{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Identity: "a.b", H2: true,
				Labels: map[string]string{"pod": "p"}}),
			scriptedcp.WeightedAddr(scriptedcp.Endpoint{Addr: netip.MustParseAddrPort("[fd00::1]:80")}),
		}, MetricLabels: map[string]string{"service": "s"}}}},
		{Update: &destination.Update_Remove{Remove: &destination.AddrSet{Addrs: []*pbnet.TcpAddress{scriptedcp.TCPAddr(netip.MustParseAddrPort("10.0.0.1:80"))}}}},
		{Update: &destination.Update_NoEndpoints{NoEndpoints: &destination.NoEndpoints{Exists: true}}},
		{},
	} {
		b, err := proto.Marshal(u)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, replace bool) {
		var u destination.Update
		if proto.Unmarshal(data, &u) != nil {
			return
		}
		r := New(Options{Client: destination.NewDestinationClient(nil), Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler)})
		defer r.Close()
		tg := newTarget(r, "web.ns.svc.cluster.local:80")
		tg.apply(&u, replace)
		tg.apply(&u, false)
		for _, e := range tg.be.Balancer.Endpoints() {
			if !e.Addr.IsValid() || e.Addr.Port() == 0 {
				t.Fatalf("invalid endpoint address %v", e.Addr)
			}
		}
	})
}
