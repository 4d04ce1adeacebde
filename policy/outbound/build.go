package outbound

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/l5d-go/l5d/policy/routes"
	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
	"github.com/l5d-go/l5d/proto/gen/opaqueroute"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
)

// routeBuilder renders the routes attached to one Service port.
type routeBuilder struct {
	cfg    Config
	svc    *corev1.Service
	port   uint16
	parent *pb.Backend // the parent Service's balancer
	lookup func(ns, name string) *corev1.Service
	sc     serviceConfig
	// egress, when the parent is an EgressNetwork, is what a backendRef naming it
	// resolves to: the parent, forwarding to the original destination.
	egress *routes.Backend
}

// retry is the route's retry configuration when it has any retry annotation, else the
// Service's.
func (b routeBuilder) retry(m routes.Meta) routes.RetryConfig {
	if r, err := routes.ParseRetryAnnotations(m.Annotations); err == nil && r.Set {
		return r
	}
	return b.sc.retry
}

// defaultRoute matches every request and sends it to the Service, with the Service's
// timeouts and retries.
func (b routeBuilder) defaultRoute() *pb.HttpRoute {
	t := b.sc.timeouts.Proto()
	return &pb.HttpRoute{
		Metadata: defaultMeta(),
		Rules: []*pb.HttpRoute_Rule{{
			Matches: []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: "/"}}}},
			Backends: &pb.HttpRoute_Distribution{Kind: &pb.HttpRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.HttpRoute_Distribution_FirstAvailable{
				Backends: []*pb.HttpRoute_RouteBackend{{Backend: b.parent}}}}},
			Timeouts: t,
			Retry:    b.sc.retry.HTTPProto(),
		}},
	}
}

// backendKind says how a backendRef resolves: a Service balancer, or a failure because
// the Service is missing or the ref is not a Service.
func (b routeBuilder) resolve(ref routes.Backend) (backend *pb.Backend, failure string) {
	md := &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{
		Group: ref.Group, Kind: ref.Kind, Name: ref.Name, Namespace: ref.Namespace, Port: uint32(ref.Port)}}}
	if e := b.egress; e != nil && ref.Group == e.Group && ref.Kind == e.Kind && ref.Name == e.Name && ref.Namespace == e.Namespace {
		return b.parent, ""
	}
	if !ref.IsService() {
		return &pb.Backend{Metadata: md, Queue: queue()}, fmt.Sprintf("backend %s/%s is a %s, not a Service", ref.Namespace, ref.Name, ref.Kind)
	}
	if b.lookup(ref.Namespace, ref.Name) == nil {
		return &pb.Backend{Metadata: md, Queue: queue()}, fmt.Sprintf("Service %s/%s not found", ref.Namespace, ref.Name)
	}
	return b.cfg.balancer(md, ref.Name, ref.Namespace, ref.Port), ""
}

func httpFilters(fs []routes.HTTPFilter) []*pb.HttpRoute_Filter {
	var out []*pb.HttpRoute_Filter
	for _, f := range fs {
		switch {
		case f.RequestHeaders != nil:
			out = append(out, &pb.HttpRoute_Filter{Kind: &pb.HttpRoute_Filter_RequestHeaderModifier{RequestHeaderModifier: f.RequestHeaders}})
		case f.ResponseHeaders != nil:
			out = append(out, &pb.HttpRoute_Filter{Kind: &pb.HttpRoute_Filter_ResponseHeaderModifier{ResponseHeaderModifier: f.ResponseHeaders}})
		case f.Redirect != nil:
			out = append(out, &pb.HttpRoute_Filter{Kind: &pb.HttpRoute_Filter_Redirect{Redirect: f.Redirect}})
		case f.FailureInjector != nil:
			out = append(out, &pb.HttpRoute_Filter{Kind: &pb.HttpRoute_Filter_FailureInjector{FailureInjector: f.FailureInjector}})
		case f.Rewrite != nil:
			out = append(out, &pb.HttpRoute_Filter{Kind: &pb.HttpRoute_Filter_UrlRewrite{UrlRewrite: f.Rewrite}})
		}
	}
	return out
}

func grpcFilters(fs []routes.GRPCFilter) []*pb.GrpcRoute_Filter {
	var out []*pb.GrpcRoute_Filter
	for _, f := range fs {
		switch {
		case f.RequestHeaders != nil:
			out = append(out, &pb.GrpcRoute_Filter{Kind: &pb.GrpcRoute_Filter_RequestHeaderModifier{RequestHeaderModifier: f.RequestHeaders}})
		case f.FailureInjector != nil:
			out = append(out, &pb.GrpcRoute_Filter{Kind: &pb.GrpcRoute_Filter_FailureInjector{FailureInjector: f.FailureInjector}})
		}
	}
	return out
}

func (b routeBuilder) httpRoute(r *routes.HTTPRoute) *pb.HttpRoute {
	out := &pb.HttpRoute{Metadata: r.Metadata(), Hosts: r.Hosts}
	retry := b.retry(r.Meta).HTTPProto()
	for _, rule := range r.Rules {
		t := rule.Timeouts.Or(b.sc.timeouts).Proto()
		pr := &pb.HttpRoute_Rule{Matches: rule.Matches, Filters: httpFilters(rule.Filters), Timeouts: t, Retry: retry}
		if len(rule.Backends) == 0 {
			pr.Backends = &pb.HttpRoute_Distribution{Kind: &pb.HttpRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.HttpRoute_Distribution_FirstAvailable{
				Backends: []*pb.HttpRoute_RouteBackend{{Backend: b.parent}}}}}
		} else {
			var ws []*pb.HttpRoute_WeightedRouteBackend
			for _, ref := range rule.Backends {
				be, failure := b.resolve(ref)
				rb := &pb.HttpRoute_RouteBackend{Backend: be, Filters: httpFilters(ref.HTTPFilters)}
				if failure != "" {
					rb.Filters = []*pb.HttpRoute_Filter{{Kind: &pb.HttpRoute_Filter_FailureInjector{FailureInjector: &httproute.HttpFailureInjector{
						Status: 500, Message: failure, Ratio: &httproute.Ratio{Numerator: 1, Denominator: 1}}}}}
				}
				ws = append(ws, &pb.HttpRoute_WeightedRouteBackend{Backend: rb, Weight: ref.Weight})
			}
			pr.Backends = &pb.HttpRoute_Distribution{Kind: &pb.HttpRoute_Distribution_RandomAvailable_{RandomAvailable: &pb.HttpRoute_Distribution_RandomAvailable{Backends: ws}}}
		}
		out.Rules = append(out.Rules, pr)
	}
	return out
}

// grpcUnavailable is the gRPC status of a call to a backend that does not resolve.
const grpcUnavailable = 14

func (b routeBuilder) grpcRoute(r *routes.GRPCRoute) *pb.GrpcRoute {
	out := &pb.GrpcRoute{Metadata: r.Metadata(), Hosts: r.Hosts}
	retry := b.retry(r.Meta).GRPCProto()
	for _, rule := range r.Rules {
		t := rule.Timeouts.Or(b.sc.timeouts).Proto()
		pr := &pb.GrpcRoute_Rule{Matches: rule.Matches, Filters: grpcFilters(rule.Filters), Timeouts: t, Retry: retry}
		if len(rule.Backends) == 0 {
			pr.Backends = &pb.GrpcRoute_Distribution{Kind: &pb.GrpcRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.GrpcRoute_Distribution_FirstAvailable{
				Backends: []*pb.GrpcRoute_RouteBackend{{Backend: b.parent}}}}}
		} else {
			var ws []*pb.GrpcRoute_WeightedRouteBackend
			for _, ref := range rule.Backends {
				be, failure := b.resolve(ref)
				rb := &pb.GrpcRoute_RouteBackend{Backend: be, Filters: grpcFilters(ref.GRPCFilters)}
				if failure != "" {
					rb.Filters = []*pb.GrpcRoute_Filter{{Kind: &pb.GrpcRoute_Filter_FailureInjector{FailureInjector: &grpcroute.GrpcFailureInjector{
						Code: grpcUnavailable, Message: failure, Ratio: &httproute.Ratio{Numerator: 1, Denominator: 1}}}}}
				}
				ws = append(ws, &pb.GrpcRoute_WeightedRouteBackend{Backend: rb, Weight: ref.Weight})
			}
			pr.Backends = &pb.GrpcRoute_Distribution{Kind: &pb.GrpcRoute_Distribution_RandomAvailable_{RandomAvailable: &pb.GrpcRoute_Distribution_RandomAvailable{Backends: ws}}}
		}
		out.Rules = append(out.Rules, pr)
	}
	return out
}

// connBackends renders the weighted backends of a TCPRoute or TLSRoute rule (none: the
// parent itself); a backend that does not resolve carries an Invalid filter, which fails
// its share of connections.
func (b routeBuilder) connBackends(refs []routes.Backend) []connBackend {
	if len(refs) == 0 {
		return []connBackend{{backend: b.parent, weight: 1}}
	}
	var out []connBackend
	for _, ref := range refs {
		be, failure := b.resolve(ref)
		out = append(out, connBackend{backend: be, weight: ref.Weight, failure: failure})
	}
	return out
}

// connBackend is one weighted backend of a connection-level route.
type connBackend struct {
	backend *pb.Backend
	weight  uint32
	failure string // why the backend does not resolve, or ""
}

// tcpRoute renders a TCPRoute as an opaque route.
func (b routeBuilder) tcpRoute(r *routes.TCPRoute) *pb.OpaqueRoute {
	out := &pb.OpaqueRoute{Metadata: r.Metadata()}
	for _, rule := range r.Rules {
		var ws []*pb.OpaqueRoute_WeightedRouteBackend
		for _, cb := range b.connBackends(rule) {
			rb := &pb.OpaqueRoute_RouteBackend{Backend: cb.backend}
			if cb.failure != "" {
				rb.Filters = []*pb.OpaqueRoute_Filter{{Kind: &pb.OpaqueRoute_Filter_Invalid{Invalid: &opaqueroute.Invalid{Message: cb.failure}}}}
			}
			ws = append(ws, &pb.OpaqueRoute_WeightedRouteBackend{Backend: rb, Weight: cb.weight})
		}
		out.Rules = append(out.Rules, &pb.OpaqueRoute_Rule{Backends: &pb.OpaqueRoute_Distribution{Kind: &pb.OpaqueRoute_Distribution_RandomAvailable_{
			RandomAvailable: &pb.OpaqueRoute_Distribution_RandomAvailable{Backends: ws}}}})
	}
	return out
}

// tlsRoute renders a TLSRoute: its SNI matches and weighted backends.
func (b routeBuilder) tlsRoute(r *routes.TLSRoute) *pb.TlsRoute {
	out := &pb.TlsRoute{Metadata: r.Metadata(), Snis: r.SNIs}
	for _, rule := range r.Rules {
		var ws []*pb.TlsRoute_WeightedRouteBackend
		for _, cb := range b.connBackends(rule) {
			rb := &pb.TlsRoute_RouteBackend{Backend: cb.backend}
			if cb.failure != "" {
				rb.Filters = []*pb.TlsRoute_Filter{{Kind: &pb.TlsRoute_Filter_Invalid{Invalid: &opaqueroute.Invalid{Message: cb.failure}}}}
			}
			ws = append(ws, &pb.TlsRoute_WeightedRouteBackend{Backend: rb, Weight: cb.weight})
		}
		out.Rules = append(out.Rules, &pb.TlsRoute_Rule{Backends: &pb.TlsRoute_Distribution{Kind: &pb.TlsRoute_Distribution_RandomAvailable_{
			RandomAvailable: &pb.TlsRoute_Distribution_RandomAvailable{Backends: ws}}}})
	}
	return out
}
