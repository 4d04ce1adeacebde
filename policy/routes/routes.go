// Package routes translates HTTPRoutes (policy.linkerd.io and gateway.networking.k8s.io)
// and GRPCRoutes (gateway.networking.k8s.io) into the proxy API's route building blocks:
// matches, filters, timeouts and retries. It is shared by the outbound and inbound policy
// servers and by the validating webhook: the From* functions return a flavor-neutral Route
// or an error naming the first invalid field, so a route the webhook admits is a route the
// servers can serve.
//
// Annotations read here (on routes and, for outbound, their parent Service):
//
//   - timeout.linkerd.io/request, timeout.linkerd.io/response, timeout.linkerd.io/idle:
//     GEP-2257 durations ("5s", "1m30s", "250ms"). A rule's spec timeouts (request,
//     backendRequest) win over the request and response annotations.
//   - retry.linkerd.io/http: comma-separated "5xx", "gateway-error" (502-504), a status
//     ("429") or a range ("500-504"); retry.linkerd.io/grpc: comma-separated gRPC codes
//     (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable);
//     retry.linkerd.io/limit: retries per request (default 1); retry.linkerd.io/timeout:
//     timeout of each try. Any retry annotation on a route replaces all of the Service's.
//   - balancer.linkerd.io/failure-accrual: consecutive, with
//     balancer.linkerd.io/failure-accrual-consecutive-max-failures (7), -min-penalty (1s),
//     -max-penalty (1m) and -jitter-ratio (0.5; -jitter-percent accepts 0-100).
package routes

import (
	"fmt"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
)

// Groups and kinds of route resources and their parents.
const (
	GatewayGroup = "gateway.networking.k8s.io"
	PolicyGroup  = "policy.linkerd.io"
	CoreGroup    = "core"

	KindHTTPRoute     = "HTTPRoute"
	KindGRPCRoute     = "GRPCRoute"
	KindService       = "Service"
	KindServer        = "Server"
	KindEgressNetwork = "EgressNetwork"
)

// Meta identifies a route resource and carries what every flavor shares.
type Meta struct {
	Group, Kind, Name, Namespace string
	Created                      time.Time
	Generation                   int64
	Annotations                  map[string]string
	ParentRefs                   []gatewayv1.ParentReference
	// Hosts match the request's host; empty matches every host.
	Hosts []*httproute.HostMatch
}

// Metadata is the proxy API metadata naming the route resource.
func (m Meta) Metadata() *pbmeta.Metadata {
	return &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{
		Group: m.Group, Kind: m.Kind, Name: m.Name, Namespace: m.Namespace}}}
}

// HTTPRoute is an HTTPRoute of either flavor with validated, translated rules.
type HTTPRoute struct {
	Meta
	Rules []HTTPRule
}

// HTTPRule is one translated HTTPRoute rule.
type HTTPRule struct {
	Matches  []*httproute.HttpRouteMatch
	Filters  []HTTPFilter
	Backends []Backend
	// Timeouts are the rule's spec timeouts over the route's timeout annotations; fold in
	// a Service's with Or.
	Timeouts TimeoutConfig
}

// GRPCRoute is a Gateway API GRPCRoute with validated, translated rules.
type GRPCRoute struct {
	Meta
	Rules []GRPCRule
}

// GRPCRule is one translated GRPCRoute rule.
type GRPCRule struct {
	Matches  []*grpcroute.GrpcRouteMatch
	Filters  []GRPCFilter
	Backends []Backend
	// Timeouts are the route's timeout annotations.
	Timeouts TimeoutConfig
}

// Backend is a weighted backendRef. Group and Kind are normalised: the core group is "core"
// and an omitted kind is "Service". Port is 0 when omitted.
type Backend struct {
	Group, Kind, Name, Namespace string
	Port                         uint16
	Weight                       uint32
	HTTPFilters                  []HTTPFilter
	GRPCFilters                  []GRPCFilter
}

// IsService reports whether the backend refers to a core Service.
func (b Backend) IsService() bool { return b.Group == CoreGroup && b.Kind == KindService }

// ParentIsService reports whether p names a core Service (group "" or "core", kind
// Service), and ParentIsServer whether it names a policy.linkerd.io Server.
func ParentIsService(p gatewayv1.ParentReference) bool {
	return groupOf(p.Group, CoreGroup) == CoreGroup && p.Kind != nil && string(*p.Kind) == KindService
}

// ParentIsServer reports whether p names a policy.linkerd.io Server.
func ParentIsServer(p gatewayv1.ParentReference) bool {
	return groupOf(p.Group, "") == PolicyGroup && p.Kind != nil && string(*p.Kind) == KindServer
}

// ParentIsEgressNetwork reports whether p names a policy.linkerd.io EgressNetwork.
func ParentIsEgressNetwork(p gatewayv1.ParentReference) bool {
	return groupOf(p.Group, "") == PolicyGroup && p.Kind != nil && string(*p.Kind) == KindEgressNetwork
}

// ParentNamespace is p's namespace, defaulting to the route's.
func ParentNamespace(p gatewayv1.ParentReference, routeNS string) string {
	if p.Namespace != nil && *p.Namespace != "" {
		return string(*p.Namespace)
	}
	return routeNS
}

func groupOf(g *gatewayv1.Group, def string) string {
	if g == nil {
		return def
	}
	if *g == "" {
		return CoreGroup
	}
	return string(*g)
}

func backend(ref gatewayv1.BackendRef, routeNS string) (Backend, error) {
	b := Backend{Group: groupOf(ref.Group, CoreGroup), Kind: KindService, Name: string(ref.Name), Namespace: routeNS, Weight: 1}
	if ref.Kind != nil {
		b.Kind = string(*ref.Kind)
	}
	if ref.Namespace != nil && *ref.Namespace != "" {
		b.Namespace = string(*ref.Namespace)
	}
	if b.Name == "" {
		return b, fmt.Errorf("backendRef has no name")
	}
	if ref.Port != nil {
		if *ref.Port < 1 || *ref.Port > 65535 {
			return b, fmt.Errorf("backendRef %s: port %d is not a TCP port", b.Name, *ref.Port)
		}
		b.Port = uint16(*ref.Port)
	}
	if ref.Weight != nil {
		if *ref.Weight < 0 {
			return b, fmt.Errorf("backendRef %s: negative weight %d", b.Name, *ref.Weight)
		}
		b.Weight = uint32(*ref.Weight)
	}
	if b.IsService() && b.Port == 0 {
		return b, fmt.Errorf("backendRef %s: a Service backend needs a port", b.Name)
	}
	return b, nil
}

func checkWeights(bs []Backend) error {
	if len(bs) < 2 {
		return nil
	}
	for _, b := range bs {
		if b.Weight > 0 {
			return nil
		}
	}
	return fmt.Errorf("every backendRef has weight 0")
}
