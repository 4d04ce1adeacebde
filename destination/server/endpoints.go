package server

import (
	"net/netip"
	"strings"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/l5d-go/l5d/destination/authority"
	"github.com/l5d-go/l5d/destination/cluster"
	pb "github.com/l5d-go/l5d/proto/gen/destination"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	"github.com/l5d-go/l5d/proto/netconv"
)

// Annotation and container names read from workloads.
const (
	annOpaquePorts = proxyconf.AnnOpaquePorts
	proxyContainer = "linkerd-proxy"
	labelCPNS      = "linkerd.io/control-plane-ns"
	proxyInbound   = 4143
	// defaultWeight is an endpoint's weight on Linkerd's scale, where 10,000 is 100%
	// (decimillis); ServiceProfile dstOverrides weights are sent on the same scale.
	defaultWeight = 10000
	// labelZone is the node label Kubernetes derives EndpointSlice zones from.
	labelZone = corev1.LabelTopologyZone
)

// endpointSet is the answer to Get for one target: ready addresses keyed by "ip:port".
type endpointSet struct {
	exists bool
	labels map[string]string
	addrs  map[netip.AddrPort]*pb.WeightedAddr
}

// view is a cluster whose endpoints are read: this one, or a linked cluster's
// (multicluster pod to pod), whose workload identities have its own trust domain.
type view struct {
	idx         *cluster.Index
	trustDomain string
	// controllerNS is the control plane's namespace for pods without the
	// linkerd.io/control-plane-ns label.
	controllerNS string
}

func (s *Server) local() view {
	return view{idx: s.idx, trustDomain: s.cfg.TrustDomain, controllerNS: s.cfg.ControllerNamespace}
}

// endpoints computes the ready endpoints of t (a Service name target) for a client in
// clientZone ("" when unknown).
func (s *Server) endpoints(t authority.Target, clientZone string) endpointSet {
	svc, err := s.idx.Services.Services(t.Namespace).Get(t.Service)
	if err != nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return endpointSet{}
	}
	set := endpointSet{exists: true, labels: map[string]string{"namespace": t.Namespace, "service": t.Service},
		addrs: map[netip.AddrPort]*pb.WeightedAddr{}}
	if remote, ok := s.remoteView(svc); ok {
		// A pod-to-pod mirror: the remote Service's endpoints, through the Link.
		if remote.idx != nil {
			rt := t
			rt.Service = remoteServiceName(svc)
			if rsvc, err := remote.idx.Services.Services(t.Namespace).Get(rt.Service); err == nil {
				s.addEndpoints(&set, remote, rt, rsvc, clientZone)
			}
		}
		return set
	}
	s.addEndpoints(&set, s.local(), t, svc, clientZone)
	return set
}

// addEndpoints adds the ready endpoints of Service svc (target t) in v to set, with their
// zone locality for a client in clientZone.
func (s *Server) addEndpoints(set *endpointSet, v view, t authority.Target, svc *corev1.Service, clientZone string) {
	idx := v.idx
	portName, found := "", false
	for _, p := range svc.Spec.Ports {
		if uint32(p.Port) == t.Port {
			portName, found = p.Name, true
		}
	}
	slices, err := idx.SlicesOf(t.Namespace, t.Service)
	if err != nil {
		return
	}
	for _, sl := range slices {
		var port int32
		for _, p := range sl.Ports {
			if p.Port == nil {
				continue
			}
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if (found && name == portName) || (!found && uint32(*p.Port) == t.Port) {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if !ready(ep) {
				continue
			}
			if t.Hostname != "" && (ep.Hostname == nil || *ep.Hostname != t.Hostname) {
				continue
			}
			var pod *corev1.Pod
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
				pod, _ = idx.Pods.Pods(ep.TargetRef.Namespace).Get(ep.TargetRef.Name)
			}
			for _, a := range ep.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					continue
				}
				ap := netip.AddrPortFrom(ip, uint16(port))
				wa := s.weightedAddrIn(v, ap, pod, svc)
				if pod == nil {
					s.gatewayEndpoint(wa, svc, sl, t.Port)
				}
				zone := ""
				if ep.Zone != nil {
					zone = *ep.Zone
				}
				if zone != "" {
					wa.MetricLabels["zone"] = zone
				}
				wa.MetricLabels["zone_locality"] = zoneLocality(clientZone, zone)
				set.addrs[ap] = wa
			}
		}
	}
}

// zoneLocality is Linkerd's zone_locality label of an endpoint in zone for a client in
// clientZone: local or remote, unknown when either zone is unknown.
func zoneLocality(clientZone, zone string) string {
	switch {
	case clientZone == "" || zone == "":
		return "unknown"
	case clientZone == zone:
		return "local"
	}
	return "remote"
}

// nodeZone returns the topology zone of the node named node, "" when unknown.
func (s *Server) nodeZone(node string) string {
	if node == "" || s.idx.Nodes == nil {
		return ""
	}
	n, err := s.idx.Nodes.Get(node)
	if err != nil {
		return ""
	}
	return n.Labels[labelZone]
}

func ready(ep discoveryv1.Endpoint) bool {
	c := ep.Conditions
	if c.Terminating != nil && *c.Terminating {
		return false
	}
	return c.Ready == nil || *c.Ready
}

// weightedAddr renders one endpoint address of this cluster. pod and svc may be nil.
func (s *Server) weightedAddr(ap netip.AddrPort, pod *corev1.Pod, svc *corev1.Service) *pb.WeightedAddr {
	return s.weightedAddrIn(s.local(), ap, pod, svc)
}

// weightedAddrIn renders one endpoint address of v. pod and svc may be nil.
func (s *Server) weightedAddrIn(v view, ap netip.AddrPort, pod *corev1.Pod, svc *corev1.Service) *pb.WeightedAddr {
	wa := &pb.WeightedAddr{Addr: tcpAddr(ap), Weight: defaultWeight, MetricLabels: map[string]string{}}
	if pod == nil {
		return wa
	}
	wa.MetricLabels["pod"] = pod.Name
	wa.MetricLabels["serviceaccount"] = serviceAccount(pod)
	if cp := pod.Labels[labelCPNS]; cp != "" {
		wa.MetricLabels["control_plane_ns"] = cp
	}
	if h := pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; h != "" {
		wa.MetricLabels["pod_template_hash"] = h
	}
	for k, v := range ownerLabels(pod) {
		wa.MetricLabels[k] = v
	}
	if !meshed(pod) {
		return wa
	}
	id := v.identity(pod)
	wa.TlsIdentity = &pb.TlsIdentity{
		Strategy:   &pb.TlsIdentity_DnsLikeIdentity_{DnsLikeIdentity: &pb.TlsIdentity_DnsLikeIdentity{Name: id}},
		ServerName: &pb.TlsIdentity_DnsLikeIdentity{Name: id},
	}
	if s.opaque(svc, pod, ap.Port()) {
		wa.ProtocolHint = &pb.ProtocolHint{
			Protocol:        &pb.ProtocolHint_Opaque_{Opaque: &pb.ProtocolHint_Opaque{}},
			OpaqueTransport: &pb.ProtocolHint_OpaqueTransport{InboundPort: proxyInbound},
		}
	} else {
		wa.ProtocolHint = &pb.ProtocolHint{Protocol: &pb.ProtocolHint_H2_{H2: &pb.ProtocolHint_H2{}}}
	}
	return wa
}

func (v view) identity(pod *corev1.Pod) string {
	cp := pod.Labels[labelCPNS]
	if cp == "" {
		cp = v.controllerNS
	}
	return certs.WorkloadIdentity(serviceAccount(pod), pod.Namespace, cp, v.trustDomain)
}

func serviceAccount(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName != "" {
		return pod.Spec.ServiceAccountName
	}
	return "default"
}

// meshed reports whether a pod runs the proxy (as a container or a native sidecar).
func meshed(pod *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name == proxyContainer {
				return true
			}
		}
	}
	return false
}

// ownerLabels returns the workload labels Linkerd reports (deployment, statefulset...).
// A job is reported as k8s_job, as Linkerd does: the proxy prefixes these labels with
// dst_, and "job" is the label Prometheus gives every scrape target.
func ownerLabels(pod *corev1.Pod) map[string]string {
	out := map[string]string{}
	defer func() {
		if v, ok := out["job"]; ok {
			delete(out, "job")
			out["k8s_job"] = v
		}
	}()
	for k, v := range pod.Labels {
		if kind, ok := strings.CutPrefix(k, "linkerd.io/proxy-"); ok && kind != "version" {
			out[kind] = v
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, r := range pod.OwnerReferences {
		if r.Controller == nil || !*r.Controller {
			continue
		}
		kind := strings.ToLower(r.Kind)
		if h := pod.Labels["pod-template-hash"]; kind == "replicaset" && h != "" && strings.HasSuffix(r.Name, "-"+h) {
			out["deployment"] = strings.TrimSuffix(r.Name, "-"+h)
		} else {
			out[kind] = r.Name
		}
	}
	return out
}

// opaque reports whether port is opaque: the Service's annotation (port names are the
// Service's), else the pod's (names are its container ports'), else the configured defaults.
// Bad items in an annotation are skipped, as Linkerd does; the injector reports them.
func (s *Server) opaque(svc *corev1.Service, pod *corev1.Pod, port uint16) bool {
	if v, ok := serviceAnnotations(svc)[annOpaquePorts]; ok {
		l, _ := proxyconf.ParseOpaquePorts(v, k8s.ServicePortNames(svc))
		return l.Contains(port)
	}
	if v, ok := podAnnotations(pod)[annOpaquePorts]; ok {
		l, _ := proxyconf.ParseOpaquePorts(v, k8s.ContainerPortNames(&pod.Spec))
		return l.Contains(port)
	}
	return s.cfg.DefaultOpaquePorts.Contains(port)
}

func serviceAnnotations(svc *corev1.Service) map[string]string {
	if svc == nil {
		return nil
	}
	return svc.Annotations
}

func podAnnotations(pod *corev1.Pod) map[string]string {
	if pod == nil {
		return nil
	}
	return pod.Annotations
}

func tcpAddr(ap netip.AddrPort) *pbnet.TcpAddress { return netconv.TCPAddress(ap) }
