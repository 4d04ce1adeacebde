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

// egressSummary renders an answer: its parent, then each HTTP/1 route with its hosts and
// filters and the opaque route with its filters.
func egressSummary(p *pb.OutboundPolicy) string {
	r := p.GetMetadata().GetResource()
	out := []string{fmt.Sprintf("%s/%s/%s/%s:%d", r.GetGroup(), r.GetKind(), r.GetNamespace(), r.GetName(), r.GetPort())}
	if r == nil {
		out[0] = "default:" + p.GetMetadata().GetDefault()
	}
	d := p.GetProtocol().GetDetect()
	for _, rt := range d.GetHttp1().GetRoutes() {
		n := rt.GetMetadata().GetDefault()
		if res := rt.GetMetadata().GetResource(); res != nil {
			n = res.GetKind() + "/" + res.GetName()
		}
		var hosts []string
		for _, h := range rt.GetHosts() {
			hosts = append(hosts, h.GetExact())
		}
		var filters []string
		for _, rule := range rt.GetRules() {
			for _, f := range rule.GetFilters() {
				if fi := f.GetFailureInjector(); fi != nil {
					filters = append(filters, fmt.Sprintf("%d %s", fi.GetStatus(), fi.GetMessage()))
				}
			}
			for _, b := range rule.GetBackends().GetFirstAvailable().GetBackends() {
				if a, ok := netconv.AddrPort(b.GetBackend().GetForward().GetAddr()); ok {
					filters = append(filters, "forward "+a.String())
				}
			}
		}
		out = append(out, "http "+n+" ["+strings.Join(hosts, ",")+"] "+strings.Join(filters, ","))
	}
	for _, rt := range d.GetOpaque().GetRoutes() {
		f := ""
		for _, rule := range rt.GetRules() {
			for _, fl := range rule.GetFilters() {
				if fl.GetForbidden() != nil {
					f = " forbidden"
				}
			}
		}
		out = append(out, "tcp "+rt.GetMetadata().GetDefault()+f)
	}
	return strings.Join(out, "\n")
}

// TestEgressNetwork: an address outside the cluster networks gets the policy of the
// EgressNetwork covering it (the client namespace's before the global egress
// namespace's, the most specific network first), Deny refuses what no route allows, an
// HTTPRoute attached to the EgressNetwork routes its hostnames to the address, and an
// address inside the cluster networks is never egress.
func TestEgressNetwork(t *testing.T) {
	c := kube.Shared(t)
	global, clientNS := c.Namespace(t), c.Namespace(t)
	e := startWith(t, outbound.Config{ClusterDomain: "cluster.local", GlobalEgressNamespace: global,
		ClusterNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	spec := func(a string) *pb.TrafficSpec {
		return &pb.TrafficSpec{SourceWorkload: clientNS + ":client", Target: &pb.TrafficSpec_Addr{Addr: netconv.TCPAddress(netip.MustParseAddrPort(a))}}
	}
	e.c.Apply(t, global, `apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: all-egress}
spec: {trafficPolicy: Deny}
`)
	want := "policy.linkerd.io/EgressNetwork/" + global + "/all-egress:80\n" +
		"http http-egress-deny [] 403 traffic not allowed,forward 203.0.113.7:80\n" +
		"tcp tcp-egress-deny forbidden"
	e.get(t, spec("203.0.113.7:80"), func(p *pb.OutboundPolicy) bool { return egressSummary(p) == want })
	// Inside the cluster networks: a plain forward.
	if p := e.get(t, spec("10.1.2.3:80"), anyPolicy); p.GetMetadata().GetDefault() != "default" || !isOpaque(p) {
		t.Errorf("cluster address: %v", p)
	}
	// The client's namespace wins, and there the most specific network.
	e.c.Apply(t, clientNS, `apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: wide}
spec:
  trafficPolicy: Deny
  networks: [{cidr: 203.0.0.0/8}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: partners}
spec:
  trafficPolicy: Allow
  networks: [{cidr: 203.0.113.0/24, except: [203.0.113.9/32]}]
`)
	want = "policy.linkerd.io/EgressNetwork/" + clientNS + "/partners:80\n" +
		"http http-egress-allow [] forward 203.0.113.7:80\n" +
		"tcp tcp-egress-allow"
	e.get(t, spec("203.0.113.7:80"), func(p *pb.OutboundPolicy) bool { return egressSummary(p) == want })
	e.get(t, spec("203.0.113.9:80"), func(p *pb.OutboundPolicy) bool {
		return strings.HasPrefix(egressSummary(p), "policy.linkerd.io/EgressNetwork/"+clientNS+"/wide:80\n")
	})
	// Another client namespace only has the global EgressNetwork.
	other := &pb.TrafficSpec{SourceWorkload: "elsewhere:client", Target: spec("203.0.113.7:80").Target}
	e.get(t, other, func(p *pb.OutboundPolicy) bool {
		return strings.HasPrefix(egressSummary(p), "policy.linkerd.io/EgressNetwork/"+global+"/all-egress:80\n")
	})
	// An HTTPRoute attached to the denying EgressNetwork allows its hostname.
	e.c.Apply(t, clientNS, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: allow-api}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: EgressNetwork, name: wide, port: 80}]
  hostnames: [api.example.com]
  rules: [{}]
`)
	want = "policy.linkerd.io/EgressNetwork/" + clientNS + "/wide:80\n" +
		"http HTTPRoute/allow-api [api.example.com] forward 203.0.113.9:80\n" +
		"http http-egress-deny [] 403 traffic not allowed,forward 203.0.113.9:80\n" +
		"tcp tcp-egress-deny forbidden"
	e.get(t, spec("203.0.113.9:80"), func(p *pb.OutboundPolicy) bool { return egressSummary(p) == want })
	// The route names port 80: traffic to port 443 stays denied.
	e.get(t, spec("203.0.113.9:443"), func(p *pb.OutboundPolicy) bool {
		return egressSummary(p) == "policy.linkerd.io/EgressNetwork/"+clientNS+"/wide:443\n"+
			"http http-egress-deny [] 403 traffic not allowed,forward 203.0.113.9:443\n"+
			"tcp tcp-egress-deny forbidden"
	})
}
