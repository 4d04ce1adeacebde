package discovery

import (
	"testing"

	"github.com/l5d-go/l5d/proto/gen/destination"
)

func TestCompileSplit(t *testing.T) {
	const self = "web.ns.svc.cluster.local:80"
	dp := func(ws ...*destination.WeightedDst) *destination.DestinationProfile {
		return &destination.DestinationProfile{DstOverrides: ws}
	}
	w := func(a string, n uint32) *destination.WeightedDst {
		return &destination.WeightedDst{Authority: a, Weight: n}
	}
	for _, tc := range []struct {
		name string
		dp   *destination.DestinationProfile
		want []splitBackend // nil: no split
	}{
		{"none", dp(), nil},
		{"only itself", dp(w("web.ns.svc.cluster.local:80", 10000)), nil},
		{"itself written differently", dp(w("Web.NS.svc.cluster.local.", 10000)), nil},
		{"no weight", dp(w("web-v2.ns.svc.cluster.local:80", 0)), nil},
		{"empty authority", dp(w(" ", 5000)), nil},
		{"another service", dp(w("web-v2.ns.svc.cluster.local.", 10000)),
			[]splitBackend{{authority: "web-v2.ns.svc.cluster.local:80", weight: 10000}}},
		{"itself and another, zero weights left out", dp(w(self, 9000), w("web-v2.ns.svc.cluster.local:8080", 1000), w("web-v3.ns.svc.cluster.local:80", 0)),
			[]splitBackend{{authority: self, self: true, weight: 9000}, {authority: "web-v2.ns.svc.cluster.local:8080", weight: 1000}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compileSplit(tc.dp, self, 80)
			if tc.want == nil {
				if s != nil {
					t.Fatalf("split %+v, want none", s.backends)
				}
				return
			}
			if s == nil || len(s.backends) != len(tc.want) {
				t.Fatalf("split %+v, want %+v", s, tc.want)
			}
			var total uint64
			for i, b := range s.backends {
				if b != tc.want[i] {
					t.Errorf("backend %d: %+v, want %+v", i, b, tc.want[i])
				}
				total += b.weight
			}
			if s.total != total {
				t.Errorf("total %d, want %d", s.total, total)
			}
		})
	}
}

// TestSplitPick: every pick lands on a backend with weight, each weighted backend can be
// picked, and picking does not allocate.
func TestSplitPick(t *testing.T) {
	s := compileSplit(&destination.DestinationProfile{DstOverrides: []*destination.WeightedDst{
		{Authority: "a.ns.svc.cluster.local:80", Weight: 1}, {Authority: "b.ns.svc.cluster.local:80", Weight: 1},
	}}, "web.ns.svc.cluster.local:80", 80)
	seen := map[string]bool{}
	for range 200 { // each side missed 200 times: probability 2^-199
		seen[s.pick().authority] = true
	}
	if len(seen) != 2 {
		t.Fatalf("picked %v, want both backends", seen)
	}
	if a := testing.AllocsPerRun(100, func() { s.pick() }); a != 0 {
		t.Errorf("pick allocates %v times", a)
	}
}
