package outbound

import (
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/proxy-init/ports"
)

// OpaquePortsAnnotation lists a Service's ports that carry opaque traffic.
const OpaquePortsAnnotation = "config.linkerd.io/opaque-ports"

// Config holds the cluster-wide settings of the outbound answers.
type Config struct {
	ClusterDomain      string        // e.g. "cluster.local"
	DetectTimeout      time.Duration // announced in Detect; 10s when zero
	DefaultOpaquePorts ports.List    // opaque unless a Service annotation says otherwise
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
		if l, err := ports.Parse(v); err == nil {
			return l.Contains(port)
		}
		for _, sp := range s.Spec.Ports { // named ports are allowed in the annotation
			if sp.Name == v && sp.Port == int32(port) {
				return true
			}
		}
		return false
	}
	return c.DefaultOpaquePorts.Contains(port)
}

// servicePolicy is the policy for traffic to port of Service s.
func (c Config) servicePolicy(s *corev1.Service, port uint16) *pb.OutboundPolicy {
	md := serviceMeta(s, port)
	backend := &pb.Backend{Metadata: md, Queue: queue(), Kind: &pb.Backend_Balancer{Balancer: &pb.Backend_BalanceP2C{
		Discovery: &pb.Backend_EndpointDiscovery{Kind: &pb.Backend_EndpointDiscovery_Dst{Dst: &pb.Backend_EndpointDiscovery_DestinationGet{
			Path: fmt.Sprintf("%s.%s.svc.%s:%d", s.Name, s.Namespace, c.ClusterDomain, port)}}},
		Load: &pb.Backend_BalanceP2C_PeakEwma_{PeakEwma: &pb.Backend_BalanceP2C_PeakEwma{
			DefaultRtt: durationpb.New(30 * time.Millisecond), Decay: durationpb.New(10 * time.Second)}},
	}}}
	opaque := opaqueRoute(backend)
	if c.opaque(s, port) {
		return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: opaque}}}
	}
	return &pb.OutboundPolicy{Metadata: md, Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{
		Timeout: durationpb.New(c.detectTimeout()),
		Opaque:  opaque,
		Http1:   &pb.ProxyProtocol_Http1{Routes: []*pb.HttpRoute{defaultHTTPRoute(backend)}},
		Http2:   &pb.ProxyProtocol_Http2{Routes: []*pb.HttpRoute{defaultHTTPRoute(backend)}},
	}}}}
}

func defaultMeta() *pbmeta.Metadata {
	return &pbmeta.Metadata{Kind: &pbmeta.Metadata_Default{Default: "default"}}
}

// defaultHTTPRoute matches every request and sends it to backend.
func defaultHTTPRoute(backend *pb.Backend) *pb.HttpRoute {
	return &pb.HttpRoute{
		Metadata: defaultMeta(),
		Hosts:    nil, // every host
		Rules: []*pb.HttpRoute_Rule{{
			Matches: []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: "/"}}}},
			Backends: &pb.HttpRoute_Distribution{Kind: &pb.HttpRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.HttpRoute_Distribution_FirstAvailable{
				Backends: []*pb.HttpRoute_RouteBackend{{Backend: backend}}}}},
		}},
	}
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
