// Package serviceprofile holds the Go types of Linkerd's ServiceProfile custom resource
// (linkerd.io/v1alpha2), with JSON field names as the CRD defines them. They are read
// from unstructured objects with runtime.DefaultUnstructuredConverter.
package serviceprofile

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group, version and resource of ServiceProfiles.
const (
	Group    = "linkerd.io"
	Version  = "v1alpha2"
	Resource = "serviceprofiles"
	Kind     = "ServiceProfile"
)

// ServiceProfile describes a service's routes, retry budget and traffic overrides.
type ServiceProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              Spec `json:"spec"`
}

// Spec is a ServiceProfile's specification.
type Spec struct {
	Routes       []RouteSpec    `json:"routes,omitempty"`
	RetryBudget  *RetryBudget   `json:"retryBudget,omitempty"`
	DstOverrides []*WeightedDst `json:"dstOverrides,omitempty"`
	OpaquePorts  []string       `json:"opaquePorts,omitempty"`
}

// RouteSpec is one route: requests matching Condition.
type RouteSpec struct {
	Name            string           `json:"name"`
	Condition       *RequestMatch    `json:"condition"`
	ResponseClasses []*ResponseClass `json:"responseClasses,omitempty"`
	IsRetryable     bool             `json:"isRetryable,omitempty"`
	// Timeout is a Go duration such as "300ms".
	Timeout string `json:"timeout,omitempty"`
}

// RequestMatch matches requests; exactly one field is set.
type RequestMatch struct {
	All       []*RequestMatch `json:"all,omitempty"`
	Any       []*RequestMatch `json:"any,omitempty"`
	Not       *RequestMatch   `json:"not,omitempty"`
	PathRegex string          `json:"pathRegex,omitempty"`
	Method    string          `json:"method,omitempty"`
}

// ResponseClass says whether responses matching Condition are failures.
type ResponseClass struct {
	Condition *ResponseMatch `json:"condition"`
	IsFailure bool           `json:"isFailure,omitempty"`
}

// ResponseMatch matches responses; exactly one field is set.
type ResponseMatch struct {
	All    []*ResponseMatch `json:"all,omitempty"`
	Any    []*ResponseMatch `json:"any,omitempty"`
	Not    *ResponseMatch   `json:"not,omitempty"`
	Status *Range           `json:"status,omitempty"`
}

// Range is an inclusive HTTP status range; a zero bound is open.
type Range struct {
	Min uint32 `json:"min,omitempty"`
	Max uint32 `json:"max,omitempty"`
}

// RetryBudget bounds retries as a ratio of requests, with a floor, over a window.
type RetryBudget struct {
	RetryRatio          float32 `json:"retryRatio"`
	MinRetriesPerSecond uint32  `json:"minRetriesPerSecond"`
	// TTL is a Go duration such as "10s".
	TTL string `json:"ttl"`
}

// WeightedDst sends a share of traffic to another authority.
type WeightedDst struct {
	Authority string `json:"authority"`
	// Weight is a Kubernetes quantity such as "500m" or 1.
	Weight resource.Quantity `json:"weight"`
}
