package outbound

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"

	"github.com/l5d-go/l5d/policy/routes"
	"github.com/l5d-go/l5d/proto/gen/destination"
	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/netconv"
)

// OpaquePortsAnnotation lists a Service's ports that carry opaque traffic.
const OpaquePortsAnnotation = proxyconf.AnnOpaquePorts

// Config holds the cluster-wide settings of the outbound answers.
type Config struct {
	ClusterDomain      string          // e.g. "cluster.local"
	DetectTimeout      time.Duration   // announced in Detect; 10s when zero
	DefaultOpaquePorts proxyconf.Ports // opaque unless a Service annotation says otherwise
	// ClusterNetworks are the cluster's pod and Service networks: an address outside them
	// is egress, governed by an EgressNetwork when one covers it.
	ClusterNetworks []netip.Prefix
	// GlobalEgressNamespace holds the EgressNetworks that apply to clients in every
	// namespace (DefaultGlobalEgressNamespace when empty).
	GlobalEgressNamespace string
}

func (c Config) detectTimeout() time.Duration {
	if c.DetectTimeout <= 0 {
		return 10 * time.Second
	}
	return c.DetectTimeout
}

func queue() *pb.Queue {
	return &pb.Queue{Capacity: 100, FailfastTimeout: durationpb.New(3 * time.Second)}
}

func serviceMeta(s *corev1.Service, port uint16) *pbmeta.Metadata {
	return &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{Group: "core", Kind: "Service", Name: s.Name, Namespace: s.Namespace, Port: uint32(port)}}}
}

func (c Config) opaque(s *corev1.Service, port uint16) bool {
	if v, ok := s.Annotations[OpaquePortsAnnotation]; ok {
		l, _ := proxyconf.ParseOpaquePorts(v, k8s.ServicePortNames(s))
		return l.Contains(port)
	}
	return c.DefaultOpaquePorts.Contains(port)
}

// balancer is the P2C PeakEWMA backend over the destination path of port of Service
// name.ns.
func (c Config) balancer(md *pbmeta.Metadata, name, ns string, port uint16) *pb.Backend {
	return &pb.Backend{Metadata: md, Queue: queue(), Kind: &pb.Backend_Balancer{Balancer: &pb.Backend_BalanceP2C{
		Discovery: &pb.Backend_EndpointDiscovery{Kind: &pb.Backend_EndpointDiscovery_Dst{Dst: &pb.Backend_EndpointDiscovery_DestinationGet{
			Path: fmt.Sprintf("%s.%s.svc.%s:%d", name, ns, c.ClusterDomain, port)}}},
		Load: &pb.Backend_BalanceP2C_PeakEwma_{PeakEwma: &pb.Backend_BalanceP2C_PeakEwma{
			DefaultRtt: durationpb.New(30 * time.Millisecond), Decay: durationpb.New(10 * time.Second)}},
	}}}
}

// serviceConfig is what a Service's annotations say about its routes.
type serviceConfig struct {
	timeouts routes.TimeoutConfig
	retry    routes.RetryConfig
	accrual  *pb.FailureAccrual
}

// annotations reads s's timeout, retry and failure accrual annotations; an invalid one is
// logged and ignored.
func annotations(s *corev1.Service, log *slog.Logger) serviceConfig {
	var sc serviceConfig
	var err error
	if sc.timeouts, err = routes.ParseTimeoutAnnotations(s.Annotations); err != nil {
		log.Warn("ignoring the Service's timeout annotations", "namespace", s.Namespace, "service", s.Name, "error", err)
	}
	if sc.retry, err = routes.ParseRetryAnnotations(s.Annotations); err != nil {
		log.Warn("ignoring the Service's retry annotations", "namespace", s.Namespace, "service", s.Name, "error", err)
	}
	if sc.accrual, err = routes.FailureAccrual(s.Annotations); err != nil {
		log.Warn("ignoring the Service's failure accrual annotations", "namespace", s.Namespace, "service", s.Name, "error", err)
	}
	return sc
}

// servicePolicy is the policy for traffic to port of Service s with the routes attached to
// it; lookup finds backend Services.
func (c Config) servicePolicy(s *corev1.Service, port uint16, att attached, lookup func(ns, name string) *corev1.Service, log *slog.Logger) *pb.OutboundPolicy {
	md := serviceMeta(s, port)
	backend := c.balancer(md, s.Name, s.Namespace, port)
	opaque := opaqueRoute(backend)
	sc := annotations(s, log)
	b := routeBuilder{cfg: c, svc: s, port: port, parent: backend, lookup: lookup, sc: sc}
	// As in Linkerd, GRPCRoutes come first, then HTTPRoutes, TLSRoutes and TCPRoutes.
	if len(att.GRPC)+len(att.HTTP) == 0 {
		if len(att.TLS) > 0 {
			var rs []*pb.TlsRoute
			for _, r := range att.TLS {
				rs = append(rs, b.tlsRoute(r))
			}
			return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Tls_{Tls: &pb.ProxyProtocol_Tls{Routes: rs}}}}
		}
		if len(att.TCP) > 0 {
			var rs []*pb.OpaqueRoute
			for _, r := range att.TCP {
				rs = append(rs, b.tcpRoute(r))
			}
			return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: &pb.ProxyProtocol_Opaque{Routes: rs}}}}
		}
	}
	if c.opaque(s, port) {
		return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: opaque}}}
	}
	if len(att.GRPC) > 0 {
		var rs []*pb.GrpcRoute
		for _, r := range att.GRPC {
			rs = append(rs, b.grpcRoute(r))
		}
		return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Grpc_{Grpc: &pb.ProxyProtocol_Grpc{
			Routes: rs, FailureAccrual: sc.accrual}}}}
	}
	httpRoutes := func() []*pb.HttpRoute {
		if len(att.HTTP) == 0 {
			return []*pb.HttpRoute{b.defaultRoute()}
		}
		var rs []*pb.HttpRoute
		for _, r := range att.HTTP {
			rs = append(rs, b.httpRoute(r))
		}
		return rs
	}
	return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{
		Timeout: durationpb.New(c.detectTimeout()),
		Opaque:  opaque,
		Http1:   &pb.ProxyProtocol_Http1{Routes: httpRoutes(), FailureAccrual: sc.accrual},
		Http2:   &pb.ProxyProtocol_Http2{Routes: httpRoutes(), FailureAccrual: sc.accrual},
	}}}}
}

func defaultMeta() *pbmeta.Metadata {
	return &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "default"}}
}

func opaqueRoute(backend *pb.Backend) *pb.ProxyProtocol_Opaque {
	return &pb.ProxyProtocol_Opaque{Routes: []*pb.OpaqueRoute{{Metadata: defaultMeta(), Rules: []*pb.OpaqueRoute_Rule{{
		Backends: &pb.OpaqueRoute_Distribution{Kind: &pb.OpaqueRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.OpaqueRoute_Distribution_FirstAvailable{
			Backends: []*pb.OpaqueRoute_RouteBackend{{Backend: backend}}}}},
	}}}}}
}

// forwardPolicy is the policy for an address that is no known Service: opaque traffic
// forwarded to the address itself.
func forwardPolicy(a netip.AddrPort) *pb.OutboundPolicy {
	md := defaultMeta()
	backend := &pb.Backend{Metadata: md, Queue: queue(), Kind: &pb.Backend_Forward{Forward: &destination.WeightedAddr{Addr: netconv.TCPAddress(a), Weight: 1}}}
	return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: opaqueRoute(backend)}}}
}
