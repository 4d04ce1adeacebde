package localcluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/l5d-go/l5d/test/localcluster/internal/clusterdns"
	"github.com/l5d-go/l5d/test/netns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
)

// The cluster DNS server's addresses in a cluster with the default Addresses (see
// Cluster.DNSAddr and Cluster.DNSServiceIP for any cluster's).
var (
	// DNSAddr is where the cluster DNS server listens (UDP and TCP), in the node namespace:
	// the node address, port 53. Pods' resolv.conf names NodeIP, as with NodeLocal
	// DNSCache, so lookups do not depend on kube-proxy having synced its rules.
	DNSAddr = netip.AddrPortFrom(NodeIP, 53)
	// DNSServiceIP is the cluster IP of the kube-dns Service in kube-system, whose
	// endpoint is DNSAddr: the conventional address, reached through kube-proxy.
	DNSServiceIP = netip.MustParseAddr("10.96.0.10")
)

// informerRecords is what the DNS server knows, read from the Service, EndpointSlice and
// Namespace informer caches (the data the hosts file is written from).
type informerRecords struct {
	services   corelisters.ServiceLister
	slices     discoverylisters.EndpointSliceLister
	namespaces corelisters.NamespaceLister
}

// Service implements clusterdns.Records: a Service's cluster IPs, or for a headless one
// its ready endpoints (every endpoint when it publishes not-ready addresses), or its
// external name.
func (r informerRecords) Service(ns, name string) (clusterdns.Service, bool) {
	svc, err := r.services.Services(ns).Get(name)
	if err != nil {
		return clusterdns.Service{}, false
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return clusterdns.Service{ExternalName: svc.Spec.ExternalName}, true
	}
	var out clusterdns.Service
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil {
				out.Addrs = append(out.Addrs, a)
			}
		}
		return out, true
	}
	slices, err := r.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name}))
	if err != nil {
		return out, true
	}
	for _, sl := range slices {
		for _, ep := range sl.Endpoints {
			if !svc.Spec.PublishNotReadyAddresses && ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			var e clusterdns.Endpoint
			if ep.Hostname != nil {
				e.Hostname = *ep.Hostname
			}
			for _, ip := range ep.Addresses {
				if a, err := netip.ParseAddr(ip); err == nil {
					e.Addrs = append(e.Addrs, a)
				}
			}
			out.Addrs = append(out.Addrs, e.Addrs...)
			out.Endpoints = append(out.Endpoints, e)
		}
	}
	return out, true
}

// Namespace implements clusterdns.Records.
func (r informerRecords) Namespace(ns string) bool {
	_, err := r.namespaces.Get(ns)
	return err == nil
}

// startDNS serves records on addr (UDP and TCP) inside the node namespace.
func startDNS(node *netns.Namespace, addr netip.AddrPort, records clusterdns.Records, log *slog.Logger) (*clusterdns.Server, error) {
	var pc net.PacketConn
	var ln net.Listener
	err := node.Do(func() (err error) {
		if pc, err = net.ListenPacket("udp", addr.String()); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp", addr.String()); err != nil {
			pc.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("localcluster: listening for DNS queries on %s in the node namespace: %w", addr, err)
	}
	return clusterdns.Serve(&clusterdns.Responder{Domain: ClusterDomain, Records: records}, pc, ln, log), nil
}

// ensureKubeDNSService makes the kube-dns Service in kube-system with cluster IP
// serviceIP (ports 53/UDP "dns" and 53/TCP "dns-tcp") and, the Service having no
// selector, its EndpointSlice pointing at addr, as a cluster running CoreDNS has. It
// runs before anything else can be given that address.
func ensureKubeDNSService(ctx context.Context, client kubernetes.Interface, serviceIP netip.Addr, addr netip.AddrPort) error {
	const ns, name = "kube-system", "kube-dns"
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("localcluster: making namespace %s: %w", ns, err)
	}
	meta := metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}}
	_, err = client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			ClusterIP: serviceIP.String(),
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("localcluster: making Service %s/%s: %w", ns, name, err)
	}
	dnsName, tcpName := "dns", "dns-tcp"
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	port := int32(addr.Port())
	ready := true
	_, err = client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-node", Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: name,
			discoveryv1.LabelManagedBy:   "localcluster.l5d.test",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{addr.Addr().String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		}},
		Ports: []discoveryv1.EndpointPort{
			{Name: &dnsName, Port: &port, Protocol: &udp},
			{Name: &tcpName, Port: &port, Protocol: &tcp},
		},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("localcluster: making the EndpointSlice of %s/%s: %w", ns, name, err)
	}
	return nil
}
