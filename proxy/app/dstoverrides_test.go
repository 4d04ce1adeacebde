package app

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// hostApp answers with its name and the Host it was sent.
func hostApp(t *testing.T, name string) netip.AddrPort {
	t.Helper()
	addr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(name + " " + r.Host))
	}))
	return addr
}

// TestDstOverridesSplitTraffic: a ServiceProfile's dstOverrides (as destination serves
// them, on Linkerd's 10,000 scale) spread the requests to its service over the services
// they name, by weight; the requests carry the chosen service's authority, and the
// outbound metrics count them under it; the profile's routes still apply. A profile
// whose overrides only name its own service does not split.
func TestDstOverridesSplitTraffic(t *testing.T) {
	const v2 = "web-v2.ns.svc.cluster.local:80"
	d, cp := startDestination(t)
	d.Set(svc, scriptedcp.Endpoint{Addr: hostApp(t, "v1")})
	d.Set(v2, scriptedcp.Endpoint{Addr: hostApp(t, "v2")})
	p := startProxy(t, unreachable, netip.AddrPort{}, map[string]string{config.EnvDestinationAddr: cp}, nil)
	_, out, _ := p.Addrs()
	c := clientTo(out, false)
	route := profileRoute("GET /books", httptypes.HttpMethod_GET, "/books")
	profile := func(overrides ...*destination.WeightedDst) *destination.DestinationProfile {
		return &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local.",
			Routes: []*destination.Route{route}, DstOverrides: overrides}
	}
	count := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			body, err := fetch(c, "http://"+svc+"/books")
			if err != nil {
				t.Fatal(err)
			}
			got[body]++
		}
		return got
	}

	// All of the weight on v2 (a trailing dot and no port, as a profile may write it).
	d.SetProfile(svc, profile(&destination.WeightedDst{Authority: "web-v2.ns.svc.cluster.local.", Weight: 10000}))
	eventually.True(t, "the split to apply", func() bool { b, _ := fetch(c, "http://"+svc+"/books"); return strings.HasPrefix(b, "v2") })
	if got := count(20); got["v2 "+v2] != 20 {
		t.Fatalf("with every request on web-v2: %v", got)
	}
	// 50/50 (500m each in the ServiceProfile).
	d.SetProfile(svc, profile(&destination.WeightedDst{Authority: svc, Weight: 5000}, &destination.WeightedDst{Authority: v2, Weight: 5000}))
	eventually.True(t, "the 50/50 split", func() bool { return count(10)["v1 "+svc] > 0 })
	got := count(400)
	// Binomial(400, 0.5): outside 140..260 with probability below 1e-9.
	if v1, v2n := got["v1 "+svc], got["v2 "+v2]; v1+v2n != 400 || v1 < 140 || v1 > 260 {
		t.Fatalf("50/50 split gave %v", got)
	}
	m := scrape(t, p)
	for _, a := range []string{svc, v2} {
		if !hasLine(m, "request_total{", `direction="outbound"`, `authority="`+a+`"`) {
			t.Errorf("no request_total for authority %s:\n%s", a, grepLines(m, "request_total{"))
		}
	}
	if !hasLine(m, "route_request_total{", `dst="`+svc+`"`, `rt_route="GET /books"`) {
		t.Errorf("the profile's route metrics lack the split requests:\n%s", grepLines(m, "route_request_total"))
	}
	// Overrides naming only the service itself: no split.
	d.SetProfile(svc, profile(&destination.WeightedDst{Authority: svc, Weight: 10000}))
	eventually.True(t, "the split to end", func() bool { return count(10)["v1 "+svc] == 10 })
}
