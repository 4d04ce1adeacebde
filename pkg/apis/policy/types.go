// Package policy holds Go types of the policy.linkerd.io custom resources the policy
// controller serves (Server, ServerAuthorization, AuthorizationPolicy,
// MeshTLSAuthentication, NetworkAuthentication, HTTPRoute, HTTPLocalRateLimitPolicy,
// EgressNetwork), with the CRDs' JSON field names. They are read from
// unstructured objects with runtime.DefaultUnstructuredConverter.
package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Group is the API group of the policy resources.
const Group = "policy.linkerd.io"

// Resources served by the controller, at the versions it reads.
var (
	Servers                = schema.GroupVersionResource{Group: Group, Version: "v1beta3", Resource: "servers"}
	AuthorizationPolicies  = schema.GroupVersionResource{Group: Group, Version: "v1alpha1", Resource: "authorizationpolicies"}
	MeshTLSAuthentications = schema.GroupVersionResource{Group: Group, Version: "v1alpha1", Resource: "meshtlsauthentications"}
	NetworkAuthentications = schema.GroupVersionResource{Group: Group, Version: "v1alpha1", Resource: "networkauthentications"}
)

// Server selects one port on a set of pods (or external workloads). The v1beta1 and
// v1beta2 versions are the same object without AccessPolicy (v1beta1 also without
// ExternalWorkloadSelector); the CRD serves all three without conversion.
type Server struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ServerSpec `json:"spec"`
}

// ServerSpec is a Server's specification.
type ServerSpec struct {
	// PodSelector selects pods in the Server's namespace; exactly one of it and
	// ExternalWorkloadSelector is set.
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// ExternalWorkloadSelector selects ExternalWorkloads (not served by this controller).
	ExternalWorkloadSelector *metav1.LabelSelector `json:"externalWorkloadSelector,omitempty"`
	// Port is a port number or a named container port.
	Port intstr.IntOrString `json:"port"`
	// ProxyProtocol is HTTP/1, HTTP/2, gRPC, opaque, TLS or unknown (detect).
	ProxyProtocol string `json:"proxyProtocol,omitempty"`
	// AccessPolicy is the default policy (deny when empty) for traffic no authorization
	// permits: one of the default inbound policy names.
	AccessPolicy string `json:"accessPolicy,omitempty"`
}

// AuthorizationPolicy permits the clients that pass every required authentication to
// reach its target.
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AuthorizationPolicySpec `json:"spec"`
}

// AuthorizationPolicySpec is an AuthorizationPolicy's specification.
type AuthorizationPolicySpec struct {
	TargetRef                  TargetRef   `json:"targetRef"`
	RequiredAuthenticationRefs []TargetRef `json:"requiredAuthenticationRefs"`
}

// TargetRef names an object, optionally in another namespace.
type TargetRef struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// MeshTLSAuthentication requires clients with one of the identities.
type MeshTLSAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              MeshTLSAuthenticationSpec `json:"spec"`
}

// MeshTLSAuthenticationSpec lists identities ("*" and "*.suffix" wildcards allowed) or
// references to ServiceAccounts and Namespaces.
type MeshTLSAuthenticationSpec struct {
	Identities   []string    `json:"identities,omitempty"`
	IdentityRefs []TargetRef `json:"identityRefs,omitempty"`
}

// NetworkAuthentication requires clients from the networks.
type NetworkAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NetworkAuthenticationSpec `json:"spec"`
}

// NetworkAuthenticationSpec lists networks.
type NetworkAuthenticationSpec struct {
	Networks []Network `json:"networks"`
}

// Network is a CIDR with exceptions.
type Network struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
}

// HTTPRoutes is the policy.linkerd.io HTTPRoute resource at the version the controller
// reads (v1beta3; v1beta1 and v1beta2 are served with the same schema).
var HTTPRoutes = schema.GroupVersionResource{Group: Group, Version: "v1beta3", Resource: "httproutes"}

// HTTPRoute is Linkerd's own HTTPRoute: the Gateway API HTTPRoute with Linkerd's filter set
// (header modifiers, redirects and failure injection). Its parents are Services (outbound
// routing) or Servers (inbound policy). Nested fields reuse the Gateway API types, so the
// same translation serves both flavors.
type HTTPRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HTTPRouteSpec             `json:"spec"`
	Status            gatewayv1.HTTPRouteStatus `json:"status,omitempty"`
}

// HTTPRouteSpec is an HTTPRoute's specification.
type HTTPRouteSpec struct {
	ParentRefs []gatewayv1.ParentReference `json:"parentRefs,omitempty"`
	Hostnames  []gatewayv1.Hostname        `json:"hostnames,omitempty"`
	Rules      []HTTPRouteRule             `json:"rules,omitempty"`
}

// HTTPRouteRule matches requests and says what to do with them.
type HTTPRouteRule struct {
	Matches     []gatewayv1.HTTPRouteMatch   `json:"matches,omitempty"`
	Filters     []HTTPRouteFilter            `json:"filters,omitempty"`
	BackendRefs []HTTPBackendRef             `json:"backendRefs,omitempty"`
	Timeouts    *gatewayv1.HTTPRouteTimeouts `json:"timeouts,omitempty"`
}

// HTTPBackendRef is a weighted backend with its own filters.
type HTTPBackendRef struct {
	gatewayv1.BackendRef `json:",inline"`
	Filters              []HTTPRouteFilter `json:"filters,omitempty"`
}

// Filter types of a policy.linkerd.io HTTPRoute.
const (
	FilterRequestHeaderModifier  = "RequestHeaderModifier"
	FilterResponseHeaderModifier = "ResponseHeaderModifier"
	FilterRequestRedirect        = "RequestRedirect"
	FilterFailureInjector        = "FailureInjector"
)

// HTTPRouteFilter is one filter; Type names the field that is set.
type HTTPRouteFilter struct {
	Type                   string                               `json:"type"`
	RequestHeaderModifier  *gatewayv1.HTTPHeaderFilter          `json:"requestHeaderModifier,omitempty"`
	ResponseHeaderModifier *gatewayv1.HTTPHeaderFilter          `json:"responseHeaderModifier,omitempty"`
	RequestRedirect        *gatewayv1.HTTPRequestRedirectFilter `json:"requestRedirect,omitempty"`
	FailureInjector        *FailureInjector                     `json:"failureInjector,omitempty"`
}

// FailureInjector answers a ratio of requests with an error instead of forwarding them.
type FailureInjector struct {
	// Status is the HTTP status of the injected failure (default 500).
	Status *int32 `json:"status,omitempty"`
	// Message is the error message (the HTTP body or gRPC message).
	Message string `json:"message,omitempty"`
	// Ratio of requests that fail, numerator/denominator (default 1/1).
	Ratio *Ratio `json:"ratio,omitempty"`
}

// Ratio is numerator/denominator.
type Ratio struct {
	Numerator   uint32 `json:"numerator"`
	Denominator uint32 `json:"denominator"`
}

// Resources of current Linkerd's policy API that the controller reads.
var (
	HTTPLocalRateLimitPolicies = schema.GroupVersionResource{Group: Group, Version: "v1alpha1", Resource: "httplocalratelimitpolicies"}
	EgressNetworks             = schema.GroupVersionResource{Group: Group, Version: "v1alpha1", Resource: "egressnetworks"}
)

// HTTPLocalRateLimitPolicy limits the HTTP requests per second a Server's proxies admit;
// each proxy keeps its own token buckets.
type HTTPLocalRateLimitPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              HTTPLocalRateLimitPolicySpec `json:"spec"`
}

// HTTPLocalRateLimitPolicySpec is an HTTPLocalRateLimitPolicy's specification.
type HTTPLocalRateLimitPolicySpec struct {
	// TargetRef names the Server (group policy.linkerd.io) whose traffic is limited.
	TargetRef TargetRef `json:"targetRef"`
	// Total limits every client together; none when nil.
	Total *Limit `json:"total,omitempty"`
	// Identity limits each client identity (clients without one share one limit).
	Identity *Limit `json:"identity,omitempty"`
	// Overrides replace the identity limit for the clients they name.
	Overrides []RateLimitOverride `json:"overrides,omitempty"`
}

// Limit is a rate in requests per second.
type Limit struct {
	RequestsPerSecond int64 `json:"requestsPerSecond"`
}

// RateLimitOverride is the limit of the clients (ServiceAccounts) it names.
type RateLimitOverride struct {
	RequestsPerSecond int64       `json:"requestsPerSecond"`
	ClientRefs        []TargetRef `json:"clientRefs"`
}

// Egress traffic policies.
const (
	TrafficPolicyAllow = "Allow"
	TrafficPolicyDeny  = "Deny"
)

// EgressNetwork governs traffic to addresses outside the cluster networks: an
// EgressNetwork in the controller's global egress namespace applies to every client, one
// elsewhere to clients in its namespace.
type EgressNetwork struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              EgressNetworkSpec   `json:"spec"`
	Status            EgressNetworkStatus `json:"status,omitempty"`
}

// EgressNetworkSpec is an EgressNetwork's specification.
type EgressNetworkSpec struct {
	// TrafficPolicy is Allow or Deny: what happens to traffic no attached route matches.
	TrafficPolicy string `json:"trafficPolicy"`
	// Networks are the addresses it covers; empty means every address outside the
	// cluster networks.
	Networks []Network `json:"networks,omitempty"`
}

// EgressNetworkStatus holds the controller's conditions.
type EgressNetworkStatus struct {
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
