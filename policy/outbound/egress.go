package outbound

import (
	"cmp"
	"log/slog"
	"net/netip"
	"slices"

	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/policy/network"
	"github.com/l5d-go/l5d/policy/routes"
	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
	"github.com/l5d-go/l5d/proto/gen/opaqueroute"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/netconv"
)

// DefaultGlobalEgressNamespace is the namespace whose EgressNetworks apply to clients in
// every namespace (Linkerd's -global-egress-network-namespace default).
const DefaultGlobalEgressNamespace = "linkerd-egress"

// egressMatch is an EgressNetwork that covers an address, with how specifically.
type egressMatch struct {
	en   *api.EgressNetwork
	bits int // the prefix length of the matching network; -1 for the default (no networks)
}

// egressNetwork returns the EgressNetwork governing traffic from a client in clientNS to
// addr, or nil: none for an address inside the cluster networks. EgressNetworks in the
// client's namespace come before those in the global egress namespace; within one, the
// most specific matching network wins (one without networks covers every address
// outside the cluster networks, least specifically), then the oldest, then by name. An
// EgressNetwork whose networks do not parse covers nothing.
func (x *Index) egressNetwork(addr netip.Addr, clientNS string, cfg Config) *api.EgressNetwork {
	addr = addr.Unmap()
	for _, p := range cfg.ClusterNetworks {
		if p.Contains(addr) {
			return nil
		}
	}
	global := cmp.Or(cfg.GlobalEgressNamespace, DefaultGlobalEgressNamespace)
	for _, ns := range []string{clientNS, global} {
		if ns == "" {
			continue
		}
		var found []egressMatch
		for _, o := range x.listRoutes(api.EgressNetworks, ns) {
			en := decode[api.EgressNetwork](o)
			if en == nil || (en.Spec.TrafficPolicy != api.TrafficPolicyAllow && en.Spec.TrafficPolicy != api.TrafficPolicyDeny) {
				continue
			}
			if bits, ok := covers(en, addr); ok {
				found = append(found, egressMatch{en, bits})
			}
		}
		if len(found) == 0 {
			continue
		}
		slices.SortFunc(found, func(a, b egressMatch) int {
			if a.bits != b.bits {
				return cmp.Compare(b.bits, a.bits)
			}
			if c := a.en.CreationTimestamp.Compare(b.en.CreationTimestamp.Time); c != 0 {
				return c
			}
			return cmp.Compare(a.en.Name, b.en.Name)
		})
		return found[0].en
	}
	return nil
}

// covers reports whether en's networks hold addr, and the matching prefix length.
func covers(en *api.EgressNetwork, addr netip.Addr) (int, bool) {
	if len(en.Spec.Networks) == 0 {
		return -1, true
	}
	best := -2
	for _, nw := range en.Spec.Networks {
		n, err := network.Parse(nw.CIDR, nw.Except)
		if err != nil {
			return 0, false // fail closed: a bad network makes the whole object cover nothing
		}
		if n.Contains(addr) && n.Net.Bits() > best {
			best = n.Net.Bits()
		}
	}
	return best, best >= 0
}

// egressMeta names port of en, the parent_* labels of the client's metrics.
func egressMeta(en *api.EgressNetwork, port uint16) *pbmeta.Metadata {
	return &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{
		Group: api.Group, Kind: "EgressNetwork", Name: en.Name, Namespace: en.Namespace, Port: uint32(port)}}}
}

// attachesToEgress reports whether m has a parentRef naming en (at port, when the
// parentRef sets one).
func attachesToEgress(m routes.Meta, en *api.EgressNetwork, port uint16) bool {
	for _, p := range m.ParentRefs {
		if routes.ParentIsEgressNetwork(p) && string(p.Name) == en.Name && routes.ParentNamespace(p, m.Namespace) == en.Namespace &&
			(p.Port == nil || uint16(*p.Port) == port) {
			return true
		}
	}
	return false
}

// egressRoutes finds the routes attached to en at port for a client in clientNS: those in
// the client's namespace, else those in en's (the producer/consumer rule of Services).
func (x *Index) egressRoutes(en *api.EgressNetwork, port uint16, clientNS string, log *slog.Logger) attached {
	return x.attachedIn(clientNS, en.Namespace, func(m routes.Meta) bool { return attachesToEgress(m, en, port) }, log)
}

// Egress traffic is refused with this message, as Linkerd's controller words it.
const egressDenied = "traffic not allowed"

// grpcPermissionDenied is the gRPC status of a refused egress call.
const grpcPermissionDenied = 7

// egressPolicy is the policy for traffic to ap, outside the cluster, governed by en: the
// attached routes (to the address itself, or to the Services they name), then a default
// route that forwards to the address (trafficPolicy Allow) or refuses (Deny: HTTP 403,
// gRPC PERMISSION_DENIED, opaque and TLS connections closed), named like Linkerd's
// (http-egress-allow, tcp-egress-deny...). A backendRef naming the EgressNetwork itself
// forwards to the address, as in Linkerd. GRPCRoutes make the protocol gRPC; else
// HTTPRoutes, Detect; else TLSRoutes, TLS; else TCPRoutes, opaque; else Detect.
func (c Config) egressPolicy(en *api.EgressNetwork, ap netip.AddrPort, att attached, lookup func(ns, name string) *corev1.Service) *pb.OutboundPolicy {
	md := egressMeta(en, ap.Port())
	fwd := &pb.Backend{Metadata: md, Queue: queue(), Kind: &pb.Backend_Forward{Forward: &destination.WeightedAddr{Addr: netconv.TCPAddress(ap), Weight: 1}}}
	deny := en.Spec.TrafficPolicy == api.TrafficPolicyDeny
	verdict := "allow"
	if deny {
		verdict = "deny"
	}
	b := routeBuilder{cfg: c, parent: fwd, lookup: lookup,
		egress: &routes.Backend{Group: api.Group, Kind: routes.KindEgressNetwork, Name: en.Name, Namespace: en.Namespace}}
	if len(att.GRPC) > 0 {
		var rs []*pb.GrpcRoute
		for _, r := range att.GRPC {
			rs = append(rs, b.grpcRoute(r))
		}
		def := &pb.GrpcRoute{Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "grpc-egress-" + verdict}},
			Rules: []*pb.GrpcRoute_Rule{{Matches: []*grpcroute.GrpcRouteMatch{{}},
				Backends: &pb.GrpcRoute_Distribution{Kind: &pb.GrpcRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.GrpcRoute_Distribution_FirstAvailable{
					Backends: []*pb.GrpcRoute_RouteBackend{{Backend: fwd}}}}}}}}
		if deny {
			def.Rules[0].Filters = []*pb.GrpcRoute_Filter{{Kind: &pb.GrpcRoute_Filter_FailureInjector{FailureInjector: &grpcroute.GrpcFailureInjector{
				Code: grpcPermissionDenied, Message: egressDenied, Ratio: &httproute.Ratio{Numerator: 1, Denominator: 1}}}}}
		}
		return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Grpc_{Grpc: &pb.ProxyProtocol_Grpc{Routes: append(rs, def)}}}}
	}
	if len(att.HTTP) == 0 && len(att.TLS) > 0 {
		var rs []*pb.TlsRoute
		for _, r := range att.TLS {
			rs = append(rs, b.tlsRoute(r))
		}
		def := &pb.TlsRoute{Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "tls-egress-" + verdict}},
			Rules: []*pb.TlsRoute_Rule{{Backends: &pb.TlsRoute_Distribution{Kind: &pb.TlsRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.TlsRoute_Distribution_FirstAvailable{
				Backends: []*pb.TlsRoute_RouteBackend{{Backend: fwd}}}}}}}}
		if deny {
			def.Rules[0].Filters = []*pb.TlsRoute_Filter{{Kind: &pb.TlsRoute_Filter_Forbidden{Forbidden: &opaqueroute.Forbidden{}}}}
		}
		return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Tls_{Tls: &pb.ProxyProtocol_Tls{Routes: append(rs, def)}}}}
	}
	var tcp []*pb.OpaqueRoute
	if len(att.HTTP) == 0 {
		for _, r := range att.TCP {
			tcp = append(tcp, b.tcpRoute(r))
		}
	}
	httpRoutes := func() []*pb.HttpRoute {
		var rs []*pb.HttpRoute
		for _, r := range att.HTTP {
			rs = append(rs, b.httpRoute(r))
		}
		def := &pb.HttpRoute{Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "http-egress-" + verdict}},
			Rules: []*pb.HttpRoute_Rule{{
				Matches: []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: "/"}}}},
				Backends: &pb.HttpRoute_Distribution{Kind: &pb.HttpRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.HttpRoute_Distribution_FirstAvailable{
					Backends: []*pb.HttpRoute_RouteBackend{{Backend: fwd}}}}}}}}
		if deny {
			def.Rules[0].Filters = []*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_FailureInjector{FailureInjector: &httproute.HttpFailureInjector{
				Status: 403, Message: egressDenied, Ratio: &httproute.Ratio{Numerator: 1, Denominator: 1}}}}}
		}
		return append(rs, def)
	}
	opaque := &pb.OpaqueRoute{Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "tcp-egress-" + verdict}},
		Rules: []*pb.OpaqueRoute_Rule{{Backends: &pb.OpaqueRoute_Distribution{Kind: &pb.OpaqueRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.OpaqueRoute_Distribution_FirstAvailable{
			Backends: []*pb.OpaqueRoute_RouteBackend{{Backend: fwd}}}}}}}}
	if deny {
		opaque.Rules[0].Filters = []*pb.OpaqueRoute_Filter{{Kind: &pb.OpaqueRoute_Filter_Forbidden{Forbidden: &opaqueroute.Forbidden{}}}}
	}
	if len(tcp) > 0 {
		return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: &pb.ProxyProtocol_Opaque{Routes: append(tcp, opaque)}}}}
	}
	return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{
		Timeout: durationpb.New(c.detectTimeout()),
		Opaque:  &pb.ProxyProtocol_Opaque{Routes: []*pb.OpaqueRoute{opaque}},
		Http1:   &pb.ProxyProtocol_Http1{Routes: httpRoutes()},
		Http2:   &pb.ProxyProtocol_Http2{Routes: httpRoutes()},
	}}}}
}
