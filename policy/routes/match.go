package routes

import (
	"fmt"
	"regexp"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
)

// HTTPMatches translates a rule's matches. No match at all matches every request (path
// prefix "/"), as in the Gateway API. Regular expressions must compile (RE2 syntax).
func HTTPMatches(ms []gatewayv1.HTTPRouteMatch) ([]*httproute.HttpRouteMatch, error) {
	if len(ms) == 0 {
		return []*httproute.HttpRouteMatch{{Path: &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: "/"}}}}, nil
	}
	out := make([]*httproute.HttpRouteMatch, 0, len(ms))
	for i, m := range ms {
		pm, err := httpMatch(m)
		if err != nil {
			return nil, fmt.Errorf("matches[%d]: %w", i, err)
		}
		out = append(out, pm)
	}
	return out, nil
}

func httpMatch(m gatewayv1.HTTPRouteMatch) (*httproute.HttpRouteMatch, error) {
	out := &httproute.HttpRouteMatch{}
	path, err := pathMatch(m.Path)
	if err != nil {
		return nil, err
	}
	out.Path = path
	for i, h := range m.Headers {
		hm, err := headerMatch(string(h.Name), h.Value, string(deref(h.Type, gatewayv1.HeaderMatchExact)))
		if err != nil {
			return nil, fmt.Errorf("headers[%d]: %w", i, err)
		}
		out.Headers = append(out.Headers, hm)
	}
	for i, q := range m.QueryParams {
		if q.Name == "" {
			return nil, fmt.Errorf("queryParams[%d]: empty name", i)
		}
		qm := &httproute.QueryParamMatch{Name: string(q.Name)}
		switch t := deref(q.Type, gatewayv1.QueryParamMatchExact); t {
		case gatewayv1.QueryParamMatchExact:
			qm.Value = &httproute.QueryParamMatch_Exact{Exact: q.Value}
		case gatewayv1.QueryParamMatchRegularExpression:
			if err := checkRegex(q.Value); err != nil {
				return nil, fmt.Errorf("queryParams[%d]: %w", i, err)
			}
			qm.Value = &httproute.QueryParamMatch_Regex{Regex: q.Value}
		default:
			return nil, fmt.Errorf("queryParams[%d]: unknown match type %q (want Exact or RegularExpression)", i, t)
		}
		out.QueryParams = append(out.QueryParams, qm)
	}
	if m.Method != nil {
		meth, err := Method(string(*m.Method))
		if err != nil {
			return nil, err
		}
		out.Method = meth
	}
	return out, nil
}

func pathMatch(p *gatewayv1.HTTPPathMatch) (*httproute.PathMatch, error) {
	if p == nil {
		return &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: "/"}}, nil
	}
	value := deref(p.Value, "/")
	switch t := deref(p.Type, gatewayv1.PathMatchPathPrefix); t {
	case gatewayv1.PathMatchExact:
		if !strings.HasPrefix(value, "/") {
			return nil, fmt.Errorf("path %q does not start with /", value)
		}
		return &httproute.PathMatch{Kind: &httproute.PathMatch_Exact{Exact: value}}, nil
	case gatewayv1.PathMatchPathPrefix:
		if !strings.HasPrefix(value, "/") {
			return nil, fmt.Errorf("path prefix %q does not start with /", value)
		}
		return &httproute.PathMatch{Kind: &httproute.PathMatch_Prefix{Prefix: value}}, nil
	case gatewayv1.PathMatchRegularExpression:
		if err := checkRegex(value); err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		return &httproute.PathMatch{Kind: &httproute.PathMatch_Regex{Regex: value}}, nil
	default:
		return nil, fmt.Errorf("unknown path match type %q (want Exact, PathPrefix or RegularExpression)", t)
	}
}

func headerMatch(name, value, typ string) (*httproute.HeaderMatch, error) {
	if name == "" {
		return nil, fmt.Errorf("empty header name")
	}
	hm := &httproute.HeaderMatch{Name: strings.ToLower(name)}
	switch typ {
	case "Exact":
		hm.Value = &httproute.HeaderMatch_Exact{Exact: []byte(value)}
	case "RegularExpression":
		if err := checkRegex(value); err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		hm.Value = &httproute.HeaderMatch_Regex{Regex: value}
	default:
		return nil, fmt.Errorf("header %s: unknown match type %q (want Exact or RegularExpression)", name, typ)
	}
	return hm, nil
}

func checkRegex(re string) error {
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("invalid regular expression %q: %w", re, err)
	}
	return nil
}

// Method translates an HTTP method name; the nine registered methods become enum values,
// any other token is carried as an unregistered method.
func Method(m string) (*httptypes.HttpMethod, error) {
	if v, ok := httptypes.HttpMethod_Registered_value[m]; ok {
		return &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Registered_{Registered: httptypes.HttpMethod_Registered(v)}}, nil
	}
	if m == "" || strings.ContainsAny(m, " \t\r\n()<>@,;:\\\"/[]?={}") {
		return nil, fmt.Errorf("invalid HTTP method %q", m)
	}
	return &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Unregistered{Unregistered: m}}, nil
}

// GRPCMatches translates a GRPCRoute rule's matches; no match matches every call.
func GRPCMatches(ms []gatewayv1.GRPCRouteMatch) ([]*grpcroute.GrpcRouteMatch, error) {
	if len(ms) == 0 {
		return []*grpcroute.GrpcRouteMatch{{}}, nil
	}
	out := make([]*grpcroute.GrpcRouteMatch, 0, len(ms))
	for i, m := range ms {
		gm := &grpcroute.GrpcRouteMatch{}
		if m.Method != nil {
			if t := deref(m.Method.Type, gatewayv1.GRPCMethodMatchExact); t != gatewayv1.GRPCMethodMatchExact {
				return nil, fmt.Errorf("matches[%d]: method match type %q is not supported (want Exact)", i, t)
			}
			svc, meth := deref(m.Method.Service, ""), deref(m.Method.Method, "")
			if svc == "" && meth == "" {
				return nil, fmt.Errorf("matches[%d]: method match names neither a service nor a method", i)
			}
			if strings.Contains(svc, "/") || strings.Contains(meth, "/") {
				return nil, fmt.Errorf("matches[%d]: service %q and method %q must not contain /", i, svc, meth)
			}
			gm.Rpc = &grpcroute.GrpcRpcMatch{Service: svc, Method: meth}
		}
		for j, h := range m.Headers {
			hm, err := headerMatch(string(h.Name), h.Value, string(deref(h.Type, gatewayv1.GRPCHeaderMatchExact)))
			if err != nil {
				return nil, fmt.Errorf("matches[%d].headers[%d]: %w", i, j, err)
			}
			gm.Headers = append(gm.Headers, hm)
		}
		out = append(out, gm)
	}
	return out, nil
}

// Hosts translates route hostnames: "*.example.com" matches any name ending in
// ".example.com", others match exactly (case-insensitively).
func Hosts(hs []gatewayv1.Hostname) ([]*httproute.HostMatch, error) {
	var out []*httproute.HostMatch
	for _, h := range hs {
		name := strings.ToLower(strings.TrimSuffix(string(h), "."))
		if suffix, ok := strings.CutPrefix(name, "*."); ok {
			if suffix == "" || strings.Contains(suffix, "*") {
				return nil, fmt.Errorf("invalid wildcard hostname %q", h)
			}
			labels := strings.Split(suffix, ".")
			rev := make([]string, len(labels))
			for i, l := range labels {
				rev[len(labels)-1-i] = l
			}
			out = append(out, &httproute.HostMatch{Match: &httproute.HostMatch_Suffix_{Suffix: &httproute.HostMatch_Suffix{ReverseLabels: rev}}})
			continue
		}
		if name == "" || strings.Contains(name, "*") {
			return nil, fmt.Errorf("invalid hostname %q", h)
		}
		out = append(out, &httproute.HostMatch{Match: &httproute.HostMatch_Exact{Exact: name}})
	}
	return out, nil
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
