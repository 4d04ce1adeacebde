package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ServerAuthorizations is the resource of ServerAuthorization, at the version the
// controller reads.
var ServerAuthorizations = schema.GroupVersionResource{Group: Group, Version: "v1beta1", Resource: "serverauthorizations"}

// ServerAuthorization (the older policy API) permits clients to reach the Servers it
// selects in its namespace.
type ServerAuthorization struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ServerAuthorizationSpec `json:"spec"`
}

// ServerAuthorizationSpec is a ServerAuthorization's specification.
type ServerAuthorizationSpec struct {
	Server ServerRef                 `json:"server"`
	Client ServerAuthorizationClient `json:"client"`
}

// ServerRef selects Servers in the authorization's namespace: by Name, else by the
// Selector over the Servers' labels (an empty selector selects every Server).
type ServerRef struct {
	Name     string                `json:"name,omitempty"`
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// ServerAuthorizationClient describes the clients permitted: unauthenticated ones, or
// mesh TLS clients as MeshTLS says, from Networks (the cluster networks when empty).
type ServerAuthorizationClient struct {
	Networks        []Network `json:"networks,omitempty"`
	Unauthenticated bool      `json:"unauthenticated,omitempty"`
	MeshTLS         *MeshTLS  `json:"meshTLS,omitempty"`
}

// MeshTLS permits TLS clients without an identity (UnauthenticatedTLS), or clients with
// one of the Identities ("*" and "*.suffix" wildcards allowed) or ServiceAccounts.
type MeshTLS struct {
	UnauthenticatedTLS bool                `json:"unauthenticatedTLS,omitempty"`
	Identities         []string            `json:"identities,omitempty"`
	ServiceAccounts    []ServiceAccountRef `json:"serviceAccounts,omitempty"`
}

// ServiceAccountRef names a ServiceAccount; an empty Namespace is the authorization's.
type ServiceAccountRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}
