package inbound

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/meta"
)

// probePaths returns, sorted and without duplicates, the paths of the pod's containers'
// liveness, readiness and startup httpGet probes on port (a named probe port is looked
// up in its container's ports; an empty path is "/").
func probePaths(pod *corev1.Pod, port uint32) []string {
	seen := map[string]bool{}
	for _, ct := range pod.Spec.Containers {
		for _, p := range []*corev1.Probe{ct.LivenessProbe, ct.ReadinessProbe, ct.StartupProbe} {
			if p == nil || p.HTTPGet == nil || probePort(ct, p.HTTPGet.Port) != port {
				continue
			}
			path := p.HTTPGet.Path
			if path == "" {
				path = "/"
			}
			seen[path] = true
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func probePort(ct corev1.Container, p intstr.IntOrString) uint32 {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 {
			return 0
		}
		return uint32(p.IntVal)
	}
	for _, cp := range ct.Ports {
		if cp.Name == p.StrVal && cp.ContainerPort > 0 {
			return uint32(cp.ContainerPort)
		}
	}
	return 0
}

// defaultHTTPRoutes are the routes of a Server (or default policy) without HTTPRoutes:
// the default route matching every request, and when the pod probes the port, the
// probe route (GET on each exact probe path) that also admits unauthenticated clients
// from every network. As in Linkerd, a route lists only its own authorizations: the
// proxy applies the server's authorizations to every route besides.
func defaultHTTPRoutes(probes []string) []*pb.HttpRoute {
	routes := []*pb.HttpRoute{{
		Metadata: &meta.Metadata{Kind: &meta.Metadata_Default{Default: "default"}},
		Rules: []*pb.HttpRoute_Rule{{Matches: []*httproute.HttpRouteMatch{{
			Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: "/"}}}}}},
	}}
	if len(probes) == 0 {
		return routes
	}
	rule := &pb.HttpRoute_Rule{}
	for _, p := range probes {
		rule.Matches = append(rule.Matches, &httproute.HttpRouteMatch{
			Path:   &httproute.PathMatch{Kind: &httproute.PathMatch_Exact{Exact: p}},
			Method: &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Registered_{Registered: httptypes.HttpMethod_GET}},
		})
	}
	probeAuthz := &pb.Authz{
		Networks:       networks(allNetworks),
		Authentication: unauthenticated(),
		Labels:         map[string]string{"group": "", "kind": "default", "name": "probe"},
		Metadata:       &meta.Metadata{Kind: &meta.Metadata_Default{Default: "probe"}},
	}
	return append(routes, &pb.HttpRoute{
		Metadata:       &meta.Metadata{Kind: &meta.Metadata_Default{Default: "probe"}},
		Authorizations: []*pb.Authz{probeAuthz},
		Rules:          []*pb.HttpRoute_Rule{rule},
	})
}
