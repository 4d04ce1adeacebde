package routes

import (
	"fmt"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/l5d-go/l5d/proto/gen/tlsroute"
)

// Kinds of the Gateway API's connection-level routes.
const (
	KindTLSRoute = "TLSRoute"
	KindTCPRoute = "TCPRoute"
)

// TCPRoute is a translated Gateway API TCPRoute: opaque connections spread over weighted
// backends.
type TCPRoute struct {
	Meta
	Rules [][]Backend // each rule's backendRefs
}

// TLSRoute is a translated Gateway API TLSRoute: TLS connections whose SNI matches one of
// SNIs (all of them when empty), spread over weighted backends.
type TLSRoute struct {
	Meta
	SNIs  []*tlsroute.SniMatch
	Rules [][]Backend
}

// FromGatewayTCP validates and translates a TCPRoute (read at v1 or v1alpha2, which have
// the same fields).
func FromGatewayTCP(r *gatewayv1.TCPRoute) (*TCPRoute, error) {
	m, err := meta(GatewayGroup, KindTCPRoute, r.ObjectMeta, r.Spec.ParentRefs, nil)
	if err != nil {
		return nil, err
	}
	out := &TCPRoute{Meta: m}
	for i, rule := range r.Spec.Rules {
		bs, err := backends(rule.BackendRefs, r.Namespace)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		out.Rules = append(out.Rules, bs)
	}
	return out, nil
}

// FromGatewayTLS validates and translates a TLSRoute: its hostnames become SNI matches
// ("*.example.com" any name under example.com).
func FromGatewayTLS(r *gatewayv1.TLSRoute) (*TLSRoute, error) {
	m, err := meta(GatewayGroup, KindTLSRoute, r.ObjectMeta, r.Spec.ParentRefs, r.Spec.Hostnames)
	if err != nil {
		return nil, err
	}
	out := &TLSRoute{Meta: m}
	for _, h := range m.Hosts {
		if s := h.GetSuffix(); s != nil {
			out.SNIs = append(out.SNIs, &tlsroute.SniMatch{Match: &tlsroute.SniMatch_Suffix_{Suffix: &tlsroute.SniMatch_Suffix{ReverseLabels: s.GetReverseLabels()}}})
		} else {
			out.SNIs = append(out.SNIs, &tlsroute.SniMatch{Match: &tlsroute.SniMatch_Exact{Exact: h.GetExact()}})
		}
	}
	out.Hosts = nil
	for i, rule := range r.Spec.Rules {
		bs, err := backends(rule.BackendRefs, r.Namespace)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		out.Rules = append(out.Rules, bs)
	}
	return out, nil
}

func backends(refs []gatewayv1.BackendRef, ns string) ([]Backend, error) {
	var out []Backend
	for j, ref := range refs {
		b, err := backend(ref, ns)
		if err != nil {
			return nil, fmt.Errorf("backendRefs[%d]: %w", j, err)
		}
		out = append(out, b)
	}
	return out, checkWeights(out)
}
