package server

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/l5d-go/l5d/destination/authority"
	"github.com/l5d-go/l5d/destination/cluster"
	"github.com/l5d-go/l5d/destination/remote"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	pb "github.com/l5d-go/l5d/proto/gen/destination"
)

// RemoteClusters are the linked clusters a pod-to-pod mirror resolves through
// (remote.Store).
type RemoteClusters interface {
	Get(name string) (*remote.Cluster, bool)
	Changed() <-chan struct{}
}

// SetRemoteClusters makes Services labelled mirror.linkerd.io/remote-discovery=<cluster>
// resolve to the endpoints of mirror.linkerd.io/remote-service in that linked cluster
// (same namespace), with the linked cluster's identities. Call it before serving.
func (s *Server) SetRemoteClusters(r RemoteClusters) { s.remote = r }

// remoteView returns the linked cluster a pod-to-pod mirror svc resolves through; ok is
// false for other Services. An unknown or unsynced cluster is a view without index
// (the mirror then has no endpoints).
func (s *Server) remoteView(svc *corev1.Service) (view, bool) {
	name := svc.Labels[mc.LabelRemoteDiscovery]
	if name == "" || remoteServiceName(svc) == "" {
		return view{}, false
	}
	if s.remote == nil {
		return view{}, true
	}
	c, ok := s.remote.Get(name)
	if !ok {
		return view{}, true
	}
	// The linked cluster's pods name their own control plane's namespace.
	return view{idx: c.Index(), trustDomain: c.TrustDomain, controllerNS: s.cfg.ControllerNamespace}, true
}

func remoteServiceName(svc *corev1.Service) string { return svc.Labels[mc.LabelRemoteService] }

// remoteChanged returns the channels to wait on, besides this cluster's, for the answer
// to t: the set of linked clusters and, for a pod-to-pod mirror, the remote Service's
// endpoints. Both are nil for other targets.
func (s *Server) remoteChanged(t authority.Target) (clusters, endpoints <-chan struct{}) {
	if s.remote == nil {
		return nil, nil
	}
	svc, err := s.idx.Services.Services(t.Namespace).Get(t.Service)
	if err != nil || svc.Labels[mc.LabelRemoteDiscovery] == "" {
		return nil, nil
	}
	clusters = s.remote.Changed()
	if v, _ := s.remoteView(svc); v.idx != nil {
		endpoints = v.idx.ChangedFor(cluster.EndpointsKey(t.Namespace, remoteServiceName(svc)))
	}
	return clusters, endpoints
}

// gatewayEndpoint completes an address without a pod of a gateway mirror (a Service the
// service mirror made, not pod to pod): the client proxy must see the remote gateway's
// identity (mirror.linkerd.io/remote-gateway-identity on the EndpointSlice or the
// Service) and ask the gateway for the remote Service by its name.
func (s *Server) gatewayEndpoint(wa *pb.WeightedAddr, svc *corev1.Service, sl *discoveryv1.EndpointSlice, port uint32) {
	if svc == nil || svc.Labels[mc.LabelMirroredService] != "true" || svc.Labels[mc.LabelRemoteDiscovery] != "" {
		return
	}
	id := sl.Annotations[mc.AnnRemoteGatewayIdentity]
	if id == "" {
		id = svc.Annotations[mc.AnnRemoteGatewayIdentity]
	}
	if id == "" {
		return
	}
	wa.TlsIdentity = &pb.TlsIdentity{
		Strategy:   &pb.TlsIdentity_DnsLikeIdentity_{DnsLikeIdentity: &pb.TlsIdentity_DnsLikeIdentity{Name: id}},
		ServerName: &pb.TlsIdentity_DnsLikeIdentity{Name: id},
	}
	if fq := svc.Annotations[mc.AnnRemoteSvcFQName]; fq != "" {
		wa.AuthorityOverride = &pb.AuthorityOverride{AuthorityOverride: fq + ":" + strconv.FormatUint(uint64(port), 10)}
	}
	wa.MetricLabels["gateway"] = svc.Labels[mc.LabelClusterName]
	if s.opaque(svc, nil, uint16(port)) {
		// The gateway's port is its proxy's inbound port: the transport header goes there.
		wa.ProtocolHint = &pb.ProtocolHint{
			Protocol:        &pb.ProtocolHint_Opaque_{Opaque: &pb.ProtocolHint_Opaque{}},
			OpaqueTransport: &pb.ProtocolHint_OpaqueTransport{InboundPort: wa.GetAddr().GetPort()},
		}
		return
	}
	wa.ProtocolHint = &pb.ProtocolHint{Protocol: &pb.ProtocolHint_H2_{H2: &pb.ProtocolHint_H2{}}}
}
