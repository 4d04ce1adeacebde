package routes

import (
	"fmt"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	"github.com/l5d-go/l5d/proto/gen/httproute"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
)

// HTTPFilter is one translated HTTP filter: exactly one field is set. Callers map it onto
// their own proto's filter oneof.
type HTTPFilter struct {
	RequestHeaders  *httproute.RequestHeaderModifier
	ResponseHeaders *httproute.ResponseHeaderModifier
	Redirect        *httproute.RequestRedirect
	FailureInjector *httproute.HttpFailureInjector
	// Rewrite is the Gateway API's URLRewrite filter, which only outbound policy carries
	// (an l5d extension of the proxy API).
	Rewrite *httproute.UrlRewrite
}

// GRPCFilter is one translated gRPC filter: exactly one field is set.
type GRPCFilter struct {
	RequestHeaders  *httproute.RequestHeaderModifier
	FailureInjector *grpcroute.GrpcFailureInjector
}

// GatewayHTTPFilters translates Gateway API HTTPRoute filters. Filters the proxy cannot
// apply (RequestMirror, CORS, ExternalAuth, ExtensionRef) are errors.
func GatewayHTTPFilters(fs []gatewayv1.HTTPRouteFilter) ([]HTTPFilter, error) {
	out := make([]HTTPFilter, 0, len(fs))
	for i, f := range fs {
		var lf api.HTTPRouteFilter
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			lf = api.HTTPRouteFilter{Type: api.FilterRequestHeaderModifier, RequestHeaderModifier: f.RequestHeaderModifier}
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			lf = api.HTTPRouteFilter{Type: api.FilterResponseHeaderModifier, ResponseHeaderModifier: f.ResponseHeaderModifier}
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			lf = api.HTTPRouteFilter{Type: api.FilterRequestRedirect, RequestRedirect: f.RequestRedirect}
		case gatewayv1.HTTPRouteFilterURLRewrite:
			rw, err := urlRewrite(f.URLRewrite)
			if err != nil {
				return nil, fmt.Errorf("filters[%d]: urlRewrite: %w", i, err)
			}
			out = append(out, HTTPFilter{Rewrite: rw})
			continue
		default:
			return nil, fmt.Errorf("filters[%d]: filter type %q is not supported (want RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect or URLRewrite)", i, f.Type)
		}
		hf, err := httpFilter(lf)
		if err != nil {
			return nil, fmt.Errorf("filters[%d]: %w", i, err)
		}
		out = append(out, hf)
	}
	return out, nil
}

// LinkerdHTTPFilters translates policy.linkerd.io HTTPRoute filters, failure injection
// included.
func LinkerdHTTPFilters(fs []api.HTTPRouteFilter) ([]HTTPFilter, error) {
	out := make([]HTTPFilter, 0, len(fs))
	for i, f := range fs {
		hf, err := httpFilter(f)
		if err != nil {
			return nil, fmt.Errorf("filters[%d]: %w", i, err)
		}
		out = append(out, hf)
	}
	return out, nil
}

func httpFilter(f api.HTTPRouteFilter) (HTTPFilter, error) {
	switch f.Type {
	case api.FilterRequestHeaderModifier:
		if f.RequestHeaderModifier == nil {
			return HTTPFilter{}, fmt.Errorf("%s filter without requestHeaderModifier", f.Type)
		}
		add, set, remove, err := headerEdits(f.RequestHeaderModifier)
		if err != nil {
			return HTTPFilter{}, fmt.Errorf("requestHeaderModifier: %w", err)
		}
		return HTTPFilter{RequestHeaders: &httproute.RequestHeaderModifier{Add: add, Set: set, Remove: remove}}, nil
	case api.FilterResponseHeaderModifier:
		if f.ResponseHeaderModifier == nil {
			return HTTPFilter{}, fmt.Errorf("%s filter without responseHeaderModifier", f.Type)
		}
		add, set, remove, err := headerEdits(f.ResponseHeaderModifier)
		if err != nil {
			return HTTPFilter{}, fmt.Errorf("responseHeaderModifier: %w", err)
		}
		return HTTPFilter{ResponseHeaders: &httproute.ResponseHeaderModifier{Add: add, Set: set, Remove: remove}}, nil
	case api.FilterRequestRedirect:
		if f.RequestRedirect == nil {
			return HTTPFilter{}, fmt.Errorf("%s filter without requestRedirect", f.Type)
		}
		r, err := redirect(f.RequestRedirect)
		if err != nil {
			return HTTPFilter{}, fmt.Errorf("requestRedirect: %w", err)
		}
		return HTTPFilter{Redirect: r}, nil
	case api.FilterFailureInjector:
		if f.FailureInjector == nil {
			return HTTPFilter{}, fmt.Errorf("%s filter without failureInjector", f.Type)
		}
		fi := f.FailureInjector
		status := deref(fi.Status, 500)
		if status < 100 || status > 599 {
			return HTTPFilter{}, fmt.Errorf("failureInjector: status %d is not an HTTP status", status)
		}
		ratio, err := ratioOf(fi.Ratio)
		if err != nil {
			return HTTPFilter{}, fmt.Errorf("failureInjector: %w", err)
		}
		return HTTPFilter{FailureInjector: &httproute.HttpFailureInjector{Status: uint32(status), Message: fi.Message, Ratio: ratio}}, nil
	default:
		return HTTPFilter{}, fmt.Errorf("filter type %q is not supported (want RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect or FailureInjector)", f.Type)
	}
}

func ratioOf(r *api.Ratio) (*httproute.Ratio, error) {
	if r == nil {
		return &httproute.Ratio{Numerator: 1, Denominator: 1}, nil
	}
	if r.Denominator == 0 || r.Numerator > r.Denominator {
		return nil, fmt.Errorf("ratio %d/%d is not between 0 and 1", r.Numerator, r.Denominator)
	}
	return &httproute.Ratio{Numerator: r.Numerator, Denominator: r.Denominator}, nil
}

func headerEdits(h *gatewayv1.HTTPHeaderFilter) (add, set *httptypes.Headers, remove []string, err error) {
	conv := func(what string, hs []gatewayv1.HTTPHeader) (*httptypes.Headers, error) {
		if len(hs) == 0 {
			return nil, nil
		}
		out := &httptypes.Headers{}
		for _, x := range hs {
			if x.Name == "" || strings.ContainsAny(string(x.Name), " \t\r\n:") {
				return nil, fmt.Errorf("%s: invalid header name %q", what, x.Name)
			}
			if strings.ContainsAny(x.Value, "\r\n\x00") {
				return nil, fmt.Errorf("%s: header %s: value contains a line break or NUL", what, x.Name)
			}
			out.Headers = append(out.Headers, &httptypes.Headers_Header{Name: strings.ToLower(string(x.Name)), Value: []byte(x.Value)})
		}
		return out, nil
	}
	if add, err = conv("add", h.Add); err != nil {
		return
	}
	if set, err = conv("set", h.Set); err != nil {
		return
	}
	for _, r := range h.Remove {
		if r == "" {
			return nil, nil, nil, fmt.Errorf("remove: empty header name")
		}
		remove = append(remove, strings.ToLower(r))
	}
	return
}

func redirect(r *gatewayv1.HTTPRequestRedirectFilter) (*httproute.RequestRedirect, error) {
	out := &httproute.RequestRedirect{Status: 302}
	if r.Scheme != nil {
		switch strings.ToLower(*r.Scheme) {
		case "http":
			out.Scheme = &httptypes.Scheme{Type: &httptypes.Scheme_Registered_{Registered: httptypes.Scheme_HTTP}}
		case "https":
			out.Scheme = &httptypes.Scheme{Type: &httptypes.Scheme_Registered_{Registered: httptypes.Scheme_HTTPS}}
		default:
			return nil, fmt.Errorf("scheme %q is not http or https", *r.Scheme)
		}
	}
	if r.Hostname != nil {
		out.Host = string(*r.Hostname)
	}
	if r.Port != nil {
		if *r.Port < 1 || *r.Port > 65535 {
			return nil, fmt.Errorf("port %d is not a TCP port", *r.Port)
		}
		out.Port = uint32(*r.Port)
	}
	if r.StatusCode != nil {
		switch *r.StatusCode {
		case 301, 302, 303, 307, 308:
		default:
			return nil, fmt.Errorf("statusCode %d is not 301, 302, 303, 307 or 308", *r.StatusCode)
		}
		out.Status = uint32(*r.StatusCode)
	}
	if r.Path != nil {
		p, err := pathModifier(r.Path)
		if err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		out.Path = p
	}
	return out, nil
}

// GRPCFilters translates GRPCRoute filters; only RequestHeaderModifier is supported.
func GRPCFilters(fs []gatewayv1.GRPCRouteFilter) ([]GRPCFilter, error) {
	out := make([]GRPCFilter, 0, len(fs))
	for i, f := range fs {
		if f.Type != gatewayv1.GRPCRouteFilterRequestHeaderModifier {
			return nil, fmt.Errorf("filters[%d]: filter type %q is not supported (want RequestHeaderModifier)", i, f.Type)
		}
		if f.RequestHeaderModifier == nil {
			return nil, fmt.Errorf("filters[%d]: RequestHeaderModifier filter without requestHeaderModifier", i)
		}
		add, set, remove, err := headerEdits(f.RequestHeaderModifier)
		if err != nil {
			return nil, fmt.Errorf("filters[%d]: requestHeaderModifier: %w", i, err)
		}
		out = append(out, GRPCFilter{RequestHeaders: &httproute.RequestHeaderModifier{Add: add, Set: set, Remove: remove}})
	}
	return out, nil
}

// pathModifier translates a redirect's or rewrite's path modifier.
func pathModifier(p *gatewayv1.HTTPPathModifier) (*httproute.PathModifier, error) {
	switch p.Type {
	case gatewayv1.FullPathHTTPPathModifier:
		if p.ReplaceFullPath == nil {
			return nil, fmt.Errorf("ReplaceFullPath without replaceFullPath")
		}
		return &httproute.PathModifier{Replace: &httproute.PathModifier_Full{Full: *p.ReplaceFullPath}}, nil
	case gatewayv1.PrefixMatchHTTPPathModifier:
		if p.ReplacePrefixMatch == nil {
			return nil, fmt.Errorf("ReplacePrefixMatch without replacePrefixMatch")
		}
		return &httproute.PathModifier{Replace: &httproute.PathModifier_Prefix{Prefix: *p.ReplacePrefixMatch}}, nil
	}
	return nil, fmt.Errorf("unknown modifier type %q (want ReplaceFullPath or ReplacePrefixMatch)", p.Type)
}

// urlRewrite translates a URLRewrite filter: a new host name and/or path.
func urlRewrite(r *gatewayv1.HTTPURLRewriteFilter) (*httproute.UrlRewrite, error) {
	if r == nil {
		return nil, fmt.Errorf("URLRewrite filter without urlRewrite")
	}
	out := &httproute.UrlRewrite{}
	if r.Hostname != nil {
		out.Host = strings.ToLower(string(*r.Hostname))
	}
	if r.Path != nil {
		p, err := pathModifier(r.Path)
		if err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		out.Path = p
	}
	return out, nil
}
