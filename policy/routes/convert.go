package routes

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
)

func meta(group, kind string, om metav1.ObjectMeta, parents []gatewayv1.ParentReference, hostnames []gatewayv1.Hostname) (Meta, error) {
	hosts, err := Hosts(hostnames)
	if err != nil {
		return Meta{}, fmt.Errorf("hostnames: %w", err)
	}
	for i, p := range parents {
		if p.Name == "" {
			return Meta{}, fmt.Errorf("parentRefs[%d]: no name", i)
		}
		if p.Port != nil && (*p.Port < 1 || *p.Port > 65535) {
			return Meta{}, fmt.Errorf("parentRefs[%d]: port %d is not a TCP port", i, *p.Port)
		}
	}
	return Meta{Group: group, Kind: kind, Name: om.Name, Namespace: om.Namespace, Created: om.CreationTimestamp.Time,
		Generation: om.Generation, Annotations: om.Annotations, ParentRefs: parents, Hosts: hosts}, nil
}

// specTimeouts merges a rule's spec timeouts (request, backendRequest as the response
// timeout) over the route's annotation timeouts.
func specTimeouts(t *gatewayv1.HTTPRouteTimeouts, ann TimeoutConfig) (TimeoutConfig, error) {
	out := ann
	if t == nil {
		return out, nil
	}
	if t.Request != nil {
		d, err := ParseDuration(string(*t.Request))
		if err != nil {
			return out, fmt.Errorf("timeouts.request: %w", err)
		}
		out.Request = d
	}
	if t.BackendRequest != nil {
		d, err := ParseDuration(string(*t.BackendRequest))
		if err != nil {
			return out, fmt.Errorf("timeouts.backendRequest: %w", err)
		}
		if out.Request != 0 && d > out.Request {
			return out, fmt.Errorf("timeouts.backendRequest %s exceeds timeouts.request %s", d, out.Request)
		}
		out.Response = d
	}
	return out, nil
}

// routeAnnotations validates a route's timeout and retry annotations.
func routeAnnotations(ann map[string]string) (TimeoutConfig, error) {
	if _, err := ParseRetryAnnotations(ann); err != nil {
		return TimeoutConfig{}, err
	}
	return ParseTimeoutAnnotations(ann)
}

// FromLinkerdHTTP validates and translates a policy.linkerd.io HTTPRoute.
func FromLinkerdHTTP(r *api.HTTPRoute) (*HTTPRoute, error) {
	rules := make([]httpRuleParts[api.HTTPRouteFilter], len(r.Spec.Rules))
	for i, rule := range r.Spec.Rules {
		rules[i] = httpRuleParts[api.HTTPRouteFilter]{matches: rule.Matches, timeouts: rule.Timeouts, filters: rule.Filters}
		for _, b := range rule.BackendRefs {
			rules[i].backends = append(rules[i].backends, b.BackendRef)
			rules[i].backendFilters = append(rules[i].backendFilters, b.Filters)
		}
	}
	return translateHTTP(PolicyGroup, r.ObjectMeta, r.Spec.ParentRefs, r.Spec.Hostnames, rules, LinkerdHTTPFilters)
}

// FromGatewayHTTP validates and translates a gateway.networking.k8s.io HTTPRoute.
func FromGatewayHTTP(r *gatewayv1.HTTPRoute) (*HTTPRoute, error) {
	rules := make([]httpRuleParts[gatewayv1.HTTPRouteFilter], len(r.Spec.Rules))
	for i, rule := range r.Spec.Rules {
		rules[i] = httpRuleParts[gatewayv1.HTTPRouteFilter]{matches: rule.Matches, timeouts: rule.Timeouts, filters: rule.Filters}
		for _, b := range rule.BackendRefs {
			rules[i].backends = append(rules[i].backends, b.BackendRef)
			rules[i].backendFilters = append(rules[i].backendFilters, b.Filters)
		}
	}
	return translateHTTP(GatewayGroup, r.ObjectMeta, r.Spec.ParentRefs, r.Spec.Hostnames, rules, GatewayHTTPFilters)
}

// httpRuleParts is one rule of either HTTPRoute flavour; F is the flavour's filter type
// (the only part in which the two differ).
type httpRuleParts[F any] struct {
	matches        []gatewayv1.HTTPRouteMatch
	timeouts       *gatewayv1.HTTPRouteTimeouts
	filters        []F
	backends       []gatewayv1.BackendRef
	backendFilters [][]F
}

// translateHTTP validates and translates an HTTPRoute of either flavour, with filters
// translating its filter type; errors name the rule and backend at fault.
func translateHTTP[F any](group string, om metav1.ObjectMeta, parents []gatewayv1.ParentReference, hostnames []gatewayv1.Hostname,
	rules []httpRuleParts[F], filters func([]F) ([]HTTPFilter, error)) (*HTTPRoute, error) {
	m, err := meta(group, KindHTTPRoute, om, parents, hostnames)
	if err != nil {
		return nil, err
	}
	annT, err := routeAnnotations(om.Annotations)
	if err != nil {
		return nil, err
	}
	out := &HTTPRoute{Meta: m}
	for i, rule := range rules {
		hr, err := httpRule(rule.matches, rule.timeouts, annT, om.Namespace)
		if err == nil {
			hr.Filters, err = filters(rule.filters)
		}
		for j := 0; err == nil && j < len(rule.backends); j++ {
			var b Backend
			if b, err = backend(rule.backends[j], om.Namespace); err == nil {
				if b.HTTPFilters, err = filters(rule.backendFilters[j]); err != nil {
					err = fmt.Errorf("backendRefs[%d]: %w", j, err)
				}
			}
			hr.Backends = append(hr.Backends, b)
		}
		if err == nil {
			err = checkWeights(hr.Backends)
		}
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		out.Rules = append(out.Rules, hr)
	}
	return out, nil
}

func httpRule(ms []gatewayv1.HTTPRouteMatch, t *gatewayv1.HTTPRouteTimeouts, annT TimeoutConfig, ns string) (HTTPRule, error) {
	matches, err := HTTPMatches(ms)
	if err != nil {
		return HTTPRule{}, err
	}
	timeouts, err := specTimeouts(t, annT)
	if err != nil {
		return HTTPRule{}, err
	}
	return HTTPRule{Matches: matches, Timeouts: timeouts}, nil
}

// FromGatewayGRPC validates and translates a gateway.networking.k8s.io GRPCRoute. The
// retry.linkerd.io/http annotation is an error on a GRPCRoute.
func FromGatewayGRPC(r *gatewayv1.GRPCRoute) (*GRPCRoute, error) {
	m, err := meta(GatewayGroup, KindGRPCRoute, r.ObjectMeta, r.Spec.ParentRefs, r.Spec.Hostnames)
	if err != nil {
		return nil, err
	}
	if _, ok := r.Annotations[AnnRetryHTTP]; ok {
		return nil, fmt.Errorf("annotation %s is not valid on a GRPCRoute (use %s)", AnnRetryHTTP, AnnRetryGRPC)
	}
	annT, err := routeAnnotations(r.Annotations)
	if err != nil {
		return nil, err
	}
	out := &GRPCRoute{Meta: m}
	for i, rule := range r.Spec.Rules {
		gr := GRPCRule{Timeouts: annT}
		gr.Matches, err = GRPCMatches(rule.Matches)
		if err == nil {
			gr.Filters, err = GRPCFilters(rule.Filters)
		}
		for j := 0; err == nil && j < len(rule.BackendRefs); j++ {
			var b Backend
			if b, err = backend(rule.BackendRefs[j].BackendRef, r.Namespace); err == nil {
				if b.GRPCFilters, err = GRPCFilters(rule.BackendRefs[j].Filters); err != nil {
					err = fmt.Errorf("backendRefs[%d]: %w", j, err)
				}
			}
			gr.Backends = append(gr.Backends, b)
		}
		if err == nil {
			err = checkWeights(gr.Backends)
		}
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		out.Rules = append(out.Rules, gr)
	}
	return out, nil
}
