package inbound

import (
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/policy/network"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/meta"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	"github.com/l5d-go/l5d/proto/netconv"
)

// Default inbound policies.
const (
	AllUnauthenticated     = "all-unauthenticated"
	AllAuthenticated       = "all-authenticated"
	ClusterUnauthenticated = "cluster-unauthenticated"
	ClusterAuthenticated   = "cluster-authenticated"
	Deny                   = "deny"
	Audit                  = "audit"

	annDefaultPolicy = proxyconf.AnnDefaultInboundPolicy
	annOpaquePorts   = proxyconf.AnnOpaquePorts
)

// Config holds the cluster-wide settings.
type Config struct {
	DefaultPolicy      string
	ClusterNetworks    []netip.Prefix
	ControllerNS       string
	TrustDomain        string
	DetectTimeout      time.Duration
	DefaultOpaquePorts proxyconf.Ports
}

// ValidDefault reports whether p names a default policy.
func ValidDefault(p string) bool {
	switch p {
	case AllUnauthenticated, AllAuthenticated, ClusterUnauthenticated, ClusterAuthenticated, Deny, Audit:
		return true
	}
	return false
}

var allNetworks = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// serverFor computes the policy of pod's port.
func (c Config) serverFor(x *Index, pod *corev1.Pod, port uint32) *pb.Server {
	if srv := c.selectServer(x, pod, port); srv != nil {
		return c.explicit(x, pod, port, srv)
	}
	policy := c.DefaultPolicy
	if ns, err := x.Namespaces.Get(pod.Namespace); err == nil && ValidDefault(ns.Annotations[annDefaultPolicy]) {
		policy = ns.Annotations[annDefaultPolicy]
	}
	if v := pod.Annotations[annDefaultPolicy]; ValidDefault(v) {
		policy = v
	}
	var authz []*pb.Authz
	if a := c.defaultAuthz(policy); a != nil {
		authz = []*pb.Authz{a}
	}
	return &pb.Server{
		Protocol:       c.detectOrOpaque(pod, port, defaultHTTPRoutes(probePaths(pod, port))),
		Authorizations: authz,
		Labels:         map[string]string{"group": "", "kind": "default", "name": policy},
	}
}

func (c Config) defaultAuthz(policy string) *pb.Authz {
	md := &meta.Metadata{Kind: &meta.Metadata_Default{Default: policy}}
	labels := map[string]string{"group": "", "kind": "default", "name": policy}
	switch policy {
	case AllUnauthenticated, Audit:
		return &pb.Authz{Networks: networks(allNetworks), Authentication: unauthenticated(), Labels: labels, Metadata: md}
	case ClusterUnauthenticated:
		return &pb.Authz{Networks: networks(c.ClusterNetworks), Authentication: unauthenticated(), Labels: labels, Metadata: md}
	case AllAuthenticated:
		return &pb.Authz{Networks: networks(allNetworks), Authentication: anyIdentity(), Labels: labels, Metadata: md}
	case ClusterAuthenticated:
		return &pb.Authz{Networks: networks(c.ClusterNetworks), Authentication: anyIdentity(), Labels: labels, Metadata: md}
	}
	return nil // deny
}

func unauthenticated() *pb.Authn {
	return &pb.Authn{Permit: &pb.Authn_Unauthenticated{Unauthenticated: &pb.Authn_PermitUnauthenticated{}}}
}

func anyIdentity() *pb.Authn {
	return meshTLS(nil, [][]string{{}})
}

func meshTLS(ids []string, suffixes [][]string) *pb.Authn {
	p := &pb.Authn_PermitMeshTLS_PermitClientIdentities{}
	for _, id := range ids {
		p.Identities = append(p.Identities, &pb.Identity{Name: id})
	}
	for _, s := range suffixes {
		p.Suffixes = append(p.Suffixes, &pb.IdentitySuffix{Parts: s})
	}
	return &pb.Authn{Permit: &pb.Authn_MeshTLS{MeshTLS: &pb.Authn_PermitMeshTLS{
		Clients: &pb.Authn_PermitMeshTLS_Identities{Identities: p}}}}
}

func networks(ps []netip.Prefix) []*pb.Network {
	out := make([]*pb.Network, 0, len(ps))
	for _, p := range ps {
		out = append(out, &pb.Network{Net: ipNet(p)})
	}
	return out
}

func ipNet(p netip.Prefix) *pbnet.IPNetwork { return netconv.IPNetwork(p) }

// detectOrOpaque is the protocol of a port without a declared protocol: opaque when the
// pod's (or the default) opaque ports list it, else detection with routes.
func (c Config) detectOrOpaque(pod *corev1.Pod, port uint32, routes []*pb.HttpRoute) *pb.ProxyProtocol {
	opaque := c.DefaultOpaquePorts
	if v, ok := pod.Annotations[annOpaquePorts]; ok {
		opaque, _ = proxyconf.ParseOpaquePorts(v, k8s.ContainerPortNames(&pod.Spec))
	}
	if opaque.Contains(uint16(port)) {
		return &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: &pb.ProxyProtocol_Opaque{}}}
	}
	timeout := c.DetectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Detect_{Detect: &pb.ProxyProtocol_Detect{
		Timeout: durationpb.New(timeout), HttpRoutes: routes}}}
}

// selectServer returns the oldest Server in the pod's namespace selecting the port.
func (c Config) selectServer(x *Index, pod *corev1.Pod, port uint32) *api.Server {
	var found []*api.Server
	for _, s := range list[api.Server](x, api.Servers, pod.Namespace) {
		if !serverPortMatches(s.Spec.Port, pod, port) {
			continue
		}
		if s.Spec.PodSelector == nil {
			continue // selects external workloads
		}
		sel, err := metav1.LabelSelectorAsSelector(s.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		found = append(found, s)
	}
	return oldest(found)
}

// oldest returns the object created first (the first by name among those created in the
// same second), or nil for none.
func oldest[T metav1.Object](objs []T) T {
	var zero T
	if len(objs) == 0 {
		return zero
	}
	sort.Slice(objs, func(i, j int) bool {
		ci, cj := objs[i].GetCreationTimestamp(), objs[j].GetCreationTimestamp()
		if !ci.Equal(&cj) {
			return ci.Before(&cj)
		}
		return objs[i].GetName() < objs[j].GetName()
	})
	return objs[0]
}

func serverPortMatches(p intstr.IntOrString, pod *corev1.Pod, port uint32) bool {
	if p.Type == intstr.Int {
		return uint32(p.IntVal) == port
	}
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, ct := range cs {
			for _, cp := range ct.Ports {
				if cp.Name == p.StrVal && uint32(cp.ContainerPort) == port {
					return true
				}
			}
		}
	}
	return false
}

// explicit renders a Server with the ServerAuthorizations selecting it, the
// AuthorizationPolicies bound to it (or to its namespace) and its accessPolicy.
func (c Config) explicit(x *Index, pod *corev1.Pod, port uint32, srv *api.Server) *pb.Server {
	authz := c.serverAuthorizations(x, srv)
	aps := list[api.AuthorizationPolicy](x, api.AuthorizationPolicies, srv.Namespace)
	// In name order, so that an unchanged policy renders the same answer.
	sort.Slice(aps, func(i, j int) bool { return aps[i].Name < aps[j].Name })
	for _, ap := range aps {
		t := ap.Spec.TargetRef
		kind := strings.ToLower(t.Kind)
		if !(kind == "server" && t.Name == srv.Name) && !(kind == "namespace" && t.Name == srv.Namespace) {
			continue
		}
		if a := c.authz(x, ap); a != nil {
			authz = append(authz, a)
		}
	}
	if p := srv.Spec.AccessPolicy; p != "" && p != Deny && ValidDefault(p) {
		if a := c.defaultAuthz(p); a != nil {
			authz = append(authz, a)
		}
	}
	// HTTPRoutes attached to the Server replace the default and probe routes.
	httpRoutes := func() []*pb.HttpRoute {
		if rs := c.attachedHTTPRoutes(x, srv); len(rs) > 0 {
			return rs
		}
		return defaultHTTPRoutes(probePaths(pod, port))
	}
	var protocol *pb.ProxyProtocol
	switch srv.Spec.ProxyProtocol {
	case "HTTP/1":
		protocol = &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Http1_{Http1: &pb.ProxyProtocol_Http1{Routes: httpRoutes(), LocalRateLimit: c.rateLimit(x, srv)}}}
	case "HTTP/2":
		protocol = &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Http2_{Http2: &pb.ProxyProtocol_Http2{Routes: httpRoutes(), LocalRateLimit: c.rateLimit(x, srv)}}}
	case "gRPC":
		routes := c.attachedGRPCRoutes(x, srv)
		if len(routes) == 0 {
			routes = []*pb.GrpcRoute{{Metadata: &meta.Metadata{Kind: &meta.Metadata_Default{Default: "default"}}, Rules: []*pb.GrpcRoute_Rule{{}}}}
		}
		protocol = &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Grpc_{Grpc: &pb.ProxyProtocol_Grpc{Routes: routes}}}
	case "opaque":
		protocol = &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Opaque_{Opaque: &pb.ProxyProtocol_Opaque{}}}
	case "TLS":
		protocol = &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Tls_{Tls: &pb.ProxyProtocol_Tls{}}}
	default:
		protocol = c.detectOrOpaque(pod, port, httpRoutes())
		if d := protocol.GetDetect(); d != nil {
			d.HttpLocalRateLimit = c.rateLimit(x, srv)
		}
	}
	return &pb.Server{
		Protocol:       protocol,
		Authorizations: authz,
		Labels:         map[string]string{"group": api.Group, "kind": "server", "name": srv.Name},
	}
}

// authz renders one AuthorizationPolicy, or nil when a required authentication is
// missing (the policy then permits nothing).
func (c Config) authz(x *Index, ap *api.AuthorizationPolicy) *pb.Authz {
	out := &pb.Authz{
		Labels:   map[string]string{"group": api.Group, "kind": "authorizationpolicy", "name": ap.Name},
		Metadata: &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{Group: api.Group, Kind: "authorizationpolicy", Name: ap.Name, Namespace: ap.Namespace}}},
	}
	var nets []*pb.Network
	var authn *pb.Authn
	for _, ref := range ap.Spec.RequiredAuthenticationRefs {
		ns := ref.Namespace
		if ns == "" {
			ns = ap.Namespace
		}
		switch strings.ToLower(ref.Kind) {
		case "meshtlsauthentication":
			m := get[api.MeshTLSAuthentication](x, api.MeshTLSAuthentications, ns, ref.Name)
			if m == nil {
				return nil
			}
			authn = c.meshAuthn(m)
		case "networkauthentication":
			n := get[api.NetworkAuthentication](x, api.NetworkAuthentications, ns, ref.Name)
			if n == nil {
				return nil
			}
			if len(n.Spec.Networks) == 0 {
				// Fail closed: an empty NetworkAuthentication allows no client.
				return nil
			}
			for _, nw := range n.Spec.Networks {
				parsed, err := network.Parse(nw.CIDR, nw.Except)
				if err != nil {
					// Fail closed: skipping a bad entry could widen what is allowed.
					return nil
				}
				entry := &pb.Network{Net: ipNet(parsed.Net)}
				for _, e := range parsed.Except {
					entry.Except = append(entry.Except, ipNet(e))
				}
				nets = append(nets, entry)
			}
		case "serviceaccount":
			authn = meshTLS([]string{c.identity(ref.Name, ns)}, nil)
		default:
			return nil
		}
	}
	if nets == nil {
		nets = networks(allNetworks)
	}
	if authn == nil {
		authn = unauthenticated()
	}
	out.Networks, out.Authentication = nets, authn
	return out
}

func (c Config) identity(sa, ns string) string {
	return certs.WorkloadIdentity(sa, ns, c.ControllerNS, c.TrustDomain)
}

func (c Config) meshAuthn(m *api.MeshTLSAuthentication) *pb.Authn {
	ids, suffixes := identityMatches(m.Spec.Identities)
	for _, ref := range m.Spec.IdentityRefs {
		ns := ref.Namespace
		if ns == "" {
			ns = m.Namespace
		}
		switch strings.ToLower(ref.Kind) {
		case "serviceaccount":
			ids = append(ids, c.identity(ref.Name, ns))
		case "namespace":
			suffixes = append(suffixes, strings.Split(ref.Name+"."+certs.IdentitySuffix(c.ControllerNS, c.TrustDomain), "."))
		}
	}
	return meshTLS(ids, suffixes)
}

// identityMatches splits identity patterns into exact names and suffixes: "*" is any
// identity (the empty suffix), "*.a.b" any identity ending in ".a.b".
func identityMatches(patterns []string) (ids []string, suffixes [][]string) {
	for _, id := range patterns {
		switch {
		case id == "*":
			suffixes = append(suffixes, []string{})
		case strings.HasPrefix(id, "*."):
			suffixes = append(suffixes, strings.Split(id[2:], "."))
		default:
			ids = append(ids, id)
		}
	}
	return ids, suffixes
}
