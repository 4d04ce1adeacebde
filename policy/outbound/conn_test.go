package outbound_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/policy/outbound"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/test/kube"
)

// connBackendSummary renders one connection-level backend: its Destination path or
// forward address, weight and filters.
func connBackendSummary(be *pb.Backend, weight uint32, invalid, forbidden bool) string {
	out := be.GetBalancer().GetDiscovery().GetDst().GetPath()
	if a, ok := netconv.AddrPort(be.GetForward().GetAddr()); ok {
		out = "forward " + a.String()
	}
	out += fmt.Sprintf("*%d", weight)
	if invalid {
		out += " invalid"
	}
	if forbidden {
		out += " forbidden"
	}
	return out
}

func opaqueSummary(rs []*pb.OpaqueRoute) string {
	var out []string
	for _, r := range rs {
		name := r.GetMetadata().GetDefault()
		if res := r.GetMetadata().GetResource(); res != nil {
			name = res.GetKind() + "/" + res.GetName()
		}
		var bs []string
		for _, rule := range r.GetRules() {
			forbidden := len(rule.GetFilters()) > 0 && rule.GetFilters()[0].GetForbidden() != nil
			for _, b := range rule.GetBackends().GetRandomAvailable().GetBackends() {
				bs = append(bs, connBackendSummary(b.GetBackend().GetBackend(), b.GetWeight(), len(b.GetBackend().GetFilters()) > 0, forbidden))
			}
			for _, b := range rule.GetBackends().GetFirstAvailable().GetBackends() {
				bs = append(bs, connBackendSummary(b.GetBackend(), 1, false, forbidden))
			}
		}
		out = append(out, name+": "+strings.Join(bs, ", "))
	}
	return strings.Join(out, "\n")
}

func tlsSummary(rs []*pb.TlsRoute) string {
	var out []string
	for _, r := range rs {
		name := r.GetMetadata().GetDefault()
		if res := r.GetMetadata().GetResource(); res != nil {
			name = res.GetKind() + "/" + res.GetName()
		}
		var snis []string
		for _, s := range r.GetSnis() {
			if sfx := s.GetSuffix(); sfx != nil {
				snis = append(snis, "*."+strings.Join(sfx.GetReverseLabels(), "<"))
			} else {
				snis = append(snis, s.GetExact())
			}
		}
		var bs []string
		for _, rule := range r.GetRules() {
			forbidden := len(rule.GetFilters()) > 0 && rule.GetFilters()[0].GetForbidden() != nil
			for _, b := range rule.GetBackends().GetRandomAvailable().GetBackends() {
				bs = append(bs, connBackendSummary(b.GetBackend().GetBackend(), b.GetWeight(), len(b.GetBackend().GetFilters()) > 0, forbidden))
			}
			for _, b := range rule.GetBackends().GetFirstAvailable().GetBackends() {
				bs = append(bs, connBackendSummary(b.GetBackend(), 1, false, forbidden))
			}
		}
		out = append(out, name+" ["+strings.Join(snis, ",")+"]: "+strings.Join(bs, ", "))
	}
	return strings.Join(out, "\n")
}

// TestTCPAndTLSRoutes: a TCPRoute attached to a Service port makes it opaque with the
// route's weighted backends (a missing backend Service is an invalid backend), a
// TLSRoute makes it TLS with the route's SNI matches, and the same kinds attached to an
// EgressNetwork come before its default route.
func TestTCPAndTLSRoutes(t *testing.T) {
	c := kube.Shared(t)
	global := c.Namespace(t)
	e := startWith(t, outbound.Config{ClusterDomain: "cluster.local", GlobalEgressNamespace: global,
		ClusterNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	ns := e.c.Namespace(t)
	for _, n := range []string{"db", "db-a", "db-b", "secure"} {
		e.service(t, ns, n, nil)
	}
	e.c.Apply(t, ns, `apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: db-split}
spec:
  parentRefs: [{group: core, kind: Service, name: db, port: 5432}]
  rules:
  - backendRefs: [{name: db-a, port: 5432, weight: 90}, {name: db-b, port: 5432, weight: 10}, {name: gone, port: 5432, weight: 0}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: by-sni}
spec:
  parentRefs: [{group: core, kind: Service, name: secure}]
  hostnames: [api.example.com, "*.example.org"]
  rules:
  - backendRefs: [{name: db-b, port: 80}]
`)
	dom := "." + ns + ".svc.cluster.local"
	spec := func(a string) *pb.TrafficSpec {
		return &pb.TrafficSpec{SourceWorkload: ns + ":client", Target: &pb.TrafficSpec_Authority{Authority: a}}
	}
	want := "TCPRoute/db-split: db-a" + dom + ":5432*90, db-b" + dom + ":5432*10, *0 invalid"
	e.get(t, spec("db"+dom+":5432"), func(p *pb.OutboundPolicy) bool { return opaqueSummary(p.GetProtocol().GetOpaque().GetRoutes()) == want })
	// The TCPRoute names port 5432: port 80 keeps its default routes.
	e.get(t, spec("db"+dom+":80"), isDetect)
	want = "TLSRoute/by-sni [api.example.com,*.org<example]: db-b" + dom + ":80*1"
	e.get(t, spec("secure"+dom+":80"), func(p *pb.OutboundPolicy) bool { return tlsSummary(p.GetProtocol().GetTls().GetRoutes()) == want })

	// On an EgressNetwork, before its default route.
	e.c.Apply(t, global, `apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: all-egress}
spec: {trafficPolicy: Deny}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: smtp}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: all-egress, port: 25}]
  rules: [{backendRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: all-egress, port: 25}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: api}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: all-egress, port: 443}]
  hostnames: [api.example.com]
  rules: [{backendRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: all-egress, port: 443}]}]
`)
	addrSpec := func(a string) *pb.TrafficSpec {
		return &pb.TrafficSpec{SourceWorkload: ns + ":client", Target: &pb.TrafficSpec_Addr{Addr: netconv.TCPAddress(netip.MustParseAddrPort(a))}}
	}
	want = "TCPRoute/smtp: forward 203.0.113.7:25*1\ntcp-egress-deny: forward 203.0.113.7:25*1 forbidden"
	e.get(t, addrSpec("203.0.113.7:25"), func(p *pb.OutboundPolicy) bool { return opaqueSummary(p.GetProtocol().GetOpaque().GetRoutes()) == want })
	want = "TLSRoute/api [api.example.com]: forward 203.0.113.7:443*1\ntls-egress-deny []: forward 203.0.113.7:443*1 forbidden"
	e.get(t, addrSpec("203.0.113.7:443"), func(p *pb.OutboundPolicy) bool { return tlsSummary(p.GetProtocol().GetTls().GetRoutes()) == want })
}
