// Package policy holds Go types of the policy.linkerd.io custom resources the policy
// controller serves (Server, ServerAuthorization, AuthorizationPolicy,
// MeshTLSAuthentication, NetworkAuthentication), with the CRDs' JSON field names. They are read from
// unstructured objects with runtime.DefaultUnstructuredConverter.
package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
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
