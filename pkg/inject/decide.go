package inject

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Namespace is what injection needs to know about a pod's namespace. For client-side
// injection without a cluster, the zero value (only Name set, or nothing) is fine.
type Namespace struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
}

// Reason says why a pod is or is not injected; it is the "reason" label of the metrics.
type Reason string

// Reasons for a Decision.
const (
	ReasonInjected          Reason = "injected"
	ReasonNotEnabled        Reason = "injection_not_enabled"
	ReasonDisabled          Reason = "injection_disabled"
	ReasonHostNetwork       Reason = "host_network_enabled"
	ReasonAlreadyInjected   Reason = "sidecar_already_present"
	ReasonWebhooksDisabled  Reason = "admission_webhooks_disabled"
	ReasonInvalidInjectMode Reason = "invalid_inject_annotation"
)

// Decision is whether a pod is to be injected and in which mode.
type Decision struct {
	Inject bool
	Mode   Mode
	Reason Reason
}

// Decide applies Linkerd's rules: linkerd.io/inject on the pod (template) overrides the
// namespace's; enabled and ingress inject, disabled or nothing does not (unless force, used by
// client-side injection, which treats a missing annotation as enabled). Pods with hostNetwork,
// pods that already run a proxy and pods in namespaces labelled
// config.linkerd.io/admission-webhooks=disabled are never injected. An unknown inject value
// is not injected, with ReasonInvalidInjectMode.
func Decide(ns Namespace, meta *metav1.ObjectMeta, spec *corev1.PodSpec, force bool) Decision {
	if ns.Labels[LabelAdmissionWebhooks] == "disabled" {
		return Decision{Reason: ReasonWebhooksDisabled}
	}
	mode, set := Mode(meta.Annotations[AnnotationInject]), false
	if _, set = meta.Annotations[AnnotationInject]; !set {
		mode, set = Mode(ns.Annotations[AnnotationInject]), ns.Annotations[AnnotationInject] != ""
	}
	if !set && force {
		mode, set = ModeEnabled, true
	}
	switch {
	case !set:
		return Decision{Reason: ReasonNotEnabled}
	case mode == ModeDisabled:
		return Decision{Mode: mode, Reason: ReasonDisabled}
	case mode != ModeEnabled && mode != ModeIngress:
		return Decision{Mode: mode, Reason: ReasonInvalidInjectMode}
	case spec.HostNetwork:
		return Decision{Mode: mode, Reason: ReasonHostNetwork}
	case HasProxy(spec):
		return Decision{Mode: mode, Reason: ReasonAlreadyInjected}
	}
	return Decision{Inject: true, Mode: mode, Reason: ReasonInjected}
}

// HasProxy reports whether spec already holds a linkerd-proxy container, classic or native.
func HasProxy(spec *corev1.PodSpec) bool {
	for _, list := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for i := range list {
			if list[i].Name == ProxyContainerName {
				return true
			}
		}
	}
	return false
}
