package validator

import (
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/policy/routes"
)

// LinkerdHTTPRoute checks a policy.linkerd.io HTTPRoute: its matches field by field (paths
// starting with /, regular expressions that compile, header names that are HTTP tokens),
// then everything else the controller translates (filters, backends, timeouts, retry and
// timeout annotations) through package routes.
func LinkerdHTTPRoute(r *api.HTTPRoute) field.ErrorList {
	var errs field.ErrorList
	for i, rule := range r.Spec.Rules {
		errs = append(errs, httpMatches(spec.Child("rules").Index(i).Child("matches"), rule.Matches)...)
	}
	if len(errs) > 0 {
		return errs
	}
	if _, err := routes.FromLinkerdHTTP(r); err != nil {
		return field.ErrorList{routeError(err)}
	}
	return nil
}

// GatewayHTTPRoute checks a gateway.networking.k8s.io HTTPRoute as LinkerdHTTPRoute does.
func GatewayHTTPRoute(r *gatewayv1.HTTPRoute) field.ErrorList {
	var errs field.ErrorList
	for i, rule := range r.Spec.Rules {
		errs = append(errs, httpMatches(spec.Child("rules").Index(i).Child("matches"), rule.Matches)...)
	}
	if len(errs) > 0 {
		return errs
	}
	if _, err := routes.FromGatewayHTTP(r); err != nil {
		return field.ErrorList{routeError(err)}
	}
	return nil
}

// GatewayGRPCRoute checks a gateway.networking.k8s.io GRPCRoute through package routes.
func GatewayGRPCRoute(r *gatewayv1.GRPCRoute) field.ErrorList {
	var errs field.ErrorList
	for i, rule := range r.Spec.Rules {
		for j, m := range rule.Matches {
			for k, h := range m.Headers {
				errs = append(errs, headerName(spec.Child("rules").Index(i).Child("matches").Index(j).Child("headers").Index(k).Child("name"), string(h.Name))...)
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	if _, err := routes.FromGatewayGRPC(r); err != nil {
		return field.ErrorList{routeError(err)}
	}
	return nil
}

func httpMatches(f *field.Path, ms []gatewayv1.HTTPRouteMatch) field.ErrorList {
	var errs field.ErrorList
	for i, m := range ms {
		g := f.Index(i)
		if p := m.Path; p != nil && p.Value != nil {
			v := g.Child("path", "value")
			typ := gatewayv1.PathMatchPathPrefix
			if p.Type != nil {
				typ = *p.Type
			}
			if typ == gatewayv1.PathMatchRegularExpression {
				errs = append(errs, regex(v, *p.Value)...)
			} else if !strings.HasPrefix(*p.Value, "/") {
				errs = append(errs, field.Invalid(v, *p.Value, "must start with /"))
			}
		}
		for j, h := range m.Headers {
			hf := g.Child("headers").Index(j)
			errs = append(errs, headerName(hf.Child("name"), string(h.Name))...)
			if h.Type != nil && *h.Type == gatewayv1.HeaderMatchRegularExpression {
				errs = append(errs, regex(hf.Child("value"), h.Value)...)
			}
		}
		for j, q := range m.QueryParams {
			if q.Type != nil && *q.Type == gatewayv1.QueryParamMatchRegularExpression {
				errs = append(errs, regex(g.Child("queryParams").Index(j).Child("value"), q.Value)...)
			}
		}
	}
	return errs
}

func headerName(f *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(f, "a header name")}
	}
	if msgs := validation.IsHTTPHeaderName(name); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(f, name, strings.Join(msgs, "; "))}
	}
	return nil
}

func regex(f *field.Path, re string) field.ErrorList {
	if _, err := regexp.Compile(re); err != nil {
		return field.ErrorList{field.Invalid(f, re, "not a regular expression (RE2 syntax): "+err.Error())}
	}
	return nil
}

// pathSegment is one leading segment of a package routes error ("rules[0]: matches[1]:
// ..."), which names where in the spec the problem is.
var pathSegment = regexp.MustCompile(`^[a-zA-Z][a-zA-Z.]*(\[[0-9]+\])?$`)

// routeError turns a package routes error into a field error: its leading segments become
// the field path under spec; an annotation problem is put on metadata.annotations.
func routeError(err error) *field.Error {
	parts := strings.Split(err.Error(), ": ")
	n := 0
	for n < len(parts)-1 && pathSegment.MatchString(parts[n]) {
		n++
	}
	path := spec
	for _, p := range parts[:n] {
		path = field.NewPath(path.String() + "." + p)
	}
	detail := strings.Join(parts[n:], ": ")
	if n == 0 && strings.Contains(detail, "annotation") {
		path = field.NewPath("metadata", "annotations")
	}
	return field.Invalid(path, field.OmitValueType{}, detail)
}
