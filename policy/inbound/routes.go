package inbound

import (
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/policy/routes"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
)

// Route resources the index watches when their CRDs are installed.
var (
	GatewayHTTPRoutes = schema.GroupVersionResource{Group: routes.GatewayGroup, Version: "v1", Resource: "httproutes"}
	GatewayGRPCRoutes = schema.GroupVersionResource{Group: routes.GatewayGroup, Version: "v1", Resource: "grpcroutes"}
	RouteResources    = []schema.GroupVersionResource{api.HTTPRoutes, GatewayHTTPRoutes, GatewayGRPCRoutes}
)

// attachedHTTPRoutes returns the HTTPRoutes (both groups) whose parentRefs name srv,
// oldest first (then by group and name), each with its route-level authorizations. A
// route that does not translate is left out.
func (c Config) attachedHTTPRoutes(x *Index, srv *api.Server) []*pb.HttpRoute {
	var found []*routes.HTTPRoute
	for _, r := range list[api.HTTPRoute](x, api.HTTPRoutes, srv.Namespace) {
		if t, err := routes.FromLinkerdHTTP(r); err == nil && attached(t.Meta, srv) {
			found = append(found, t)
		}
	}
	for _, r := range list[gatewayv1.HTTPRoute](x, GatewayHTTPRoutes, srv.Namespace) {
		if t, err := routes.FromGatewayHTTP(r); err == nil && attached(t.Meta, srv) {
			found = append(found, t)
		}
	}
	sort.Slice(found, func(i, j int) bool { return older(found[i].Meta, found[j].Meta) })
	out := make([]*pb.HttpRoute, 0, len(found))
	for _, r := range found {
		pr := &pb.HttpRoute{Metadata: r.Metadata(), Hosts: r.Hosts, Authorizations: c.routeAuthorizations(x, r.Meta)}
		for _, rule := range r.Rules {
			pbRule := &pb.HttpRoute_Rule{Matches: rule.Matches}
			for _, f := range rule.Filters {
				switch {
				case f.RequestHeaders != nil:
					pbRule.Filters = append(pbRule.Filters, &pb.HttpRoute_Filter{Kind: &pb.HttpRoute_Filter_RequestHeaderModifier{RequestHeaderModifier: f.RequestHeaders}})
				case f.Redirect != nil:
					pbRule.Filters = append(pbRule.Filters, &pb.HttpRoute_Filter{Kind: &pb.HttpRoute_Filter_Redirect{Redirect: f.Redirect}})
				case f.FailureInjector != nil:
					pbRule.Filters = append(pbRule.Filters, &pb.HttpRoute_Filter{Kind: &pb.HttpRoute_Filter_FailureInjector{FailureInjector: f.FailureInjector}})
				}
				// Response header modifiers and URL rewrites have no inbound form; as in
				// Linkerd they are not applied.
			}
			pr.Rules = append(pr.Rules, pbRule)
		}
		out = append(out, pr)
	}
	return out
}

// attachedGRPCRoutes returns the Gateway API GRPCRoutes whose parentRefs name srv, in
// the same order and with route-level authorizations.
func (c Config) attachedGRPCRoutes(x *Index, srv *api.Server) []*pb.GrpcRoute {
	var found []*routes.GRPCRoute
	for _, r := range list[gatewayv1.GRPCRoute](x, GatewayGRPCRoutes, srv.Namespace) {
		if t, err := routes.FromGatewayGRPC(r); err == nil && attached(t.Meta, srv) {
			found = append(found, t)
		}
	}
	sort.Slice(found, func(i, j int) bool { return older(found[i].Meta, found[j].Meta) })
	out := make([]*pb.GrpcRoute, 0, len(found))
	for _, r := range found {
		pr := &pb.GrpcRoute{Metadata: r.Metadata(), Hosts: r.Hosts, Authorizations: c.routeAuthorizations(x, r.Meta)}
		for _, rule := range r.Rules {
			pbRule := &pb.GrpcRoute_Rule{Matches: rule.Matches}
			for _, f := range rule.Filters {
				switch {
				case f.RequestHeaders != nil:
					pbRule.Filters = append(pbRule.Filters, &pb.GrpcRoute_Filter{Kind: &pb.GrpcRoute_Filter_RequestHeaderModifier{RequestHeaderModifier: f.RequestHeaders}})
				case f.FailureInjector != nil:
					pbRule.Filters = append(pbRule.Filters, &pb.GrpcRoute_Filter{Kind: &pb.GrpcRoute_Filter_FailureInjector{FailureInjector: f.FailureInjector}})
				}
			}
			pr.Rules = append(pr.Rules, pbRule)
		}
		out = append(out, pr)
	}
	return out
}

// attached reports whether a route names srv among its parents.
func attached(m routes.Meta, srv *api.Server) bool {
	for _, p := range m.ParentRefs {
		if routes.ParentIsServer(p) && string(p.Name) == srv.Name && routes.ParentNamespace(p, m.Namespace) == srv.Namespace {
			return true
		}
	}
	return false
}

// older orders routes as the Gateway API ranks ties: the oldest first, then by group
// and name.
func older(a, b routes.Meta) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	if a.Group != b.Group {
		return a.Group < b.Group
	}
	return a.Name < b.Name
}

// routeAuthorizations renders the AuthorizationPolicies whose targetRef names the route
// (its kind and name, and its group: an empty group means policy.linkerd.io).
func (c Config) routeAuthorizations(x *Index, m routes.Meta) []*pb.Authz {
	var out []*pb.Authz
	aps := list[api.AuthorizationPolicy](x, api.AuthorizationPolicies, m.Namespace)
	sort.Slice(aps, func(i, j int) bool { return aps[i].Name < aps[j].Name })
	for _, ap := range aps {
		t := ap.Spec.TargetRef
		group := t.Group
		if group == "" {
			group = api.Group
		}
		if !strings.EqualFold(t.Kind, m.Kind) || group != m.Group || t.Name != m.Name {
			continue
		}
		if a := c.authz(x, ap); a != nil {
			out = append(out, a)
		}
	}
	return out
}
