package outbound

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// recordingDiscovery knows a fixed set of names and addresses and records lookups; with
// err set it has no answer for anything.
type recordingDiscovery struct {
	names map[string]bool
	addrs map[netip.AddrPort]bool
	err   error
	asked []string
}

func (d *recordingDiscovery) Name(_ context.Context, a string) (*forward.Backend, bool, error) {
	d.asked = append(d.asked, "name "+a)
	if d.err != nil {
		return nil, false, d.err
	}
	if d.names[a] {
		return &forward.Backend{Name: a}, true, nil
	}
	return nil, false, nil
}

func (d *recordingDiscovery) Addr(_ context.Context, a netip.AddrPort) (*forward.Backend, bool, error) {
	d.asked = append(d.asked, "addr "+a.String())
	if d.err != nil {
		return nil, false, d.err
	}
	if d.addrs[a] {
		return &forward.Backend{Name: a.String()}, true, nil
	}
	return nil, false, nil
}

func testRouter(d Discovery) *Router {
	return NewRouter(Options{
		Suffixes:  []string{"svc.cluster.local."},
		Networks:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Discovery: d,
		Metrics:   metrics.New(),
	})
}

func TestTargetSelection(t *testing.T) {
	clusterIP := netip.MustParseAddrPort("10.96.0.10:8080")
	external := netip.MustParseAddrPort("203.0.113.5:443")
	cases := []struct {
		name     string
		host     string
		override string
		dst      netip.AddrPort
		want     string // backend name
		ingress  bool
	}{
		{"ingress: override wins", "web.ns.svc.cluster.local:8080", "api.ns.svc.cluster.local:9090", clusterIP, "api.ns.svc.cluster.local:9090", true},
		{"ingress: override without port names port 80", "", "api.ns.svc.cluster.local", clusterIP, "api.ns.svc.cluster.local:80", true},
		{"ingress: override of an address outside the networks", "example.com", "api.ns.svc.cluster.local:9090", external, "api.ns.svc.cluster.local:9090", true},
		{"ingress: without override, host in suffix", "web.ns.svc.cluster.local:8080", "", clusterIP, "web.ns.svc.cluster.local:8080", true},
		{"ingress: without override, the original destination", "example.com", "", clusterIP, "10.96.0.10:8080", true},
		{"default mode ignores the override", "web.ns.svc.cluster.local:8080", "api.ns.svc.cluster.local:9090", clusterIP, "web.ns.svc.cluster.local:8080", false},
		{"default mode ignores the override: original destination", "example.com", "api.ns.svc.cluster.local:9090", external, "forward 203.0.113.5:443", false},
		{"host in suffix", "web.ns.svc.cluster.local:8080", "", clusterIP, "web.ns.svc.cluster.local:8080", false},
		{"host in suffix with trailing dot and capitals", "Web.ns.svc.cluster.local.:8080", "", clusterIP, "web.ns.svc.cluster.local:8080", false},
		{"host without port gets the original port", "web.ns.svc.cluster.local", "", clusterIP, "web.ns.svc.cluster.local:8080", false},
		{"host outside suffix: profile by address", "example.com", "", clusterIP, "10.96.0.10:8080", false},
		{"unknown service name falls back to the address", "nope.ns.svc.cluster.local:8080", "", external, "forward 203.0.113.5:443", false},
		{"address outside profile networks is forwarded", "example.com", "", external, "forward 203.0.113.5:443", false},
		{"suffix must match a whole label", "web.notsvc.cluster.local:8080", "", external, "forward 203.0.113.5:443", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &recordingDiscovery{
				names: map[string]bool{"web.ns.svc.cluster.local:8080": true, "api.ns.svc.cluster.local:9090": true, "api.ns.svc.cluster.local:80": true},
				addrs: map[netip.AddrPort]bool{clusterIP: true},
			}
			rt := testRouter(d)
			rt.opts.IngressMode = tc.ingress
			r := httptest.NewRequest("GET", "http://x/", nil)
			r.Host = tc.host
			if tc.override != "" {
				r.Header.Set("l5d-dst-override", tc.override)
			}
			be, err := rt.Route(r, &forward.ConnInfo{Direction: "outbound", OrigDst: tc.dst})
			if err != nil {
				t.Fatal(err)
			}
			got := be.Name
			if be.Balancer != nil {
				got = "forward " + got
			}
			if got != tc.want {
				t.Errorf("routed to %q, want %q (lookups %v)", got, tc.want, d.asked)
			}
		})
	}
}

func TestForwardBackendsAreReused(t *testing.T) {
	rt := NewRouter(Options{Metrics: metrics.New()})
	dst := netip.MustParseAddrPort("192.0.2.1:80")
	r := httptest.NewRequest("GET", "http://x/", nil)
	ci := &forward.ConnInfo{OrigDst: dst}
	a, _ := rt.Route(r, ci)
	b, _ := rt.Route(r, ci)
	if a != b {
		t.Error("each request built a new backend for the same destination")
	}
	if n := testing.AllocsPerRun(100, func() { rt.Route(r, ci) }); n != 0 {
		t.Errorf("routing a known destination allocates %v times", n)
	}
}

// TestNoDiscoveryAnswerFailsTheRequest: when discovery has no answer for a target (control
// plane slow or away), the request fails with a proxy error instead of going to the
// original destination, which would bypass mesh TLS.
func TestNoDiscoveryAnswerFailsTheRequest(t *testing.T) {
	noAnswer := fmt.Errorf("no answer from the control plane: %w", balance.ErrFailfast)
	rt := testRouter(&recordingDiscovery{err: noAnswer})
	for _, tc := range []struct {
		name, host string
		dst        netip.AddrPort
	}{
		{"by name", "web.ns.svc.cluster.local:8080", netip.MustParseAddrPort("10.96.0.10:8080")},
		{"by address", "example.com", netip.MustParseAddrPort("10.96.0.10:8080")},
	} {
		r := httptest.NewRequest("GET", "http://x/", nil)
		r.Host = tc.host
		be, err := rt.Route(r, &forward.ConnInfo{Direction: "outbound", OrigDst: tc.dst})
		if !errors.Is(err, balance.ErrFailfast) {
			t.Fatalf("%s: routed to %v, error %v; want the discovery failure", tc.name, be, err)
		}
		if status, _ := forward.StatusFor(err); status != http.StatusGatewayTimeout {
			t.Errorf("%s: status %d, want 504", tc.name, status)
		}
	}
}

// TestForwardedTargetMovesToDiscoveredBackend: a target discovery did not know is
// forwarded to its original destination; once discovery knows it, the next request on
// the same connection goes to the discovered backend.
func TestForwardedTargetMovesToDiscoveredBackend(t *testing.T) {
	clusterIP := netip.MustParseAddrPort("10.96.0.10:8080")
	const name = "web.ns.svc.cluster.local:8080"
	d := &recordingDiscovery{names: map[string]bool{}, addrs: map[netip.AddrPort]bool{}}
	rt := testRouter(d)
	ci := &forward.ConnInfo{Direction: "outbound", OrigDst: clusterIP}
	route := func(host string) string {
		r := httptest.NewRequest("GET", "http://x/", nil)
		r.Host = host
		be, err := rt.Route(r, ci)
		if err != nil {
			t.Fatal(err)
		}
		if be.Balancer != nil {
			return "forward " + be.Name
		}
		return be.Name
	}
	if got := route(name); got != "forward 10.96.0.10:8080" {
		t.Fatalf("unknown name routed to %q", got)
	}
	if got := route("example.com"); got != "forward 10.96.0.10:8080" {
		t.Fatalf("unknown address routed to %q", got)
	}
	d.names[name], d.addrs[clusterIP] = true, true
	if got := route(name); got != name {
		t.Errorf("name known to discovery now routed to %q", got)
	}
	if got := route("example.com"); got != "10.96.0.10:8080" {
		t.Errorf("address known to discovery now routed to %q", got)
	}
}
