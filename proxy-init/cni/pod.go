package cni

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/l5d-go/l5d/pkg/proxyconf"
)

// Meshed reports whether the plugin must install the redirect rules for pod, and if not,
// why: the pod must hold the injected proxy (a container or a native sidecar init container
// named linkerd-proxy), must not be annotated linkerd.io/inject: disabled, and must not
// carry a linkerd-init container, which installs the rules itself.
func Meshed(pod *corev1.Pod) (bool, string) {
	if pod.Annotations[proxyconf.AnnInject] == proxyconf.InjectDisabled {
		return false, proxyconf.AnnInject + " is " + proxyconf.InjectDisabled
	}
	hasProxy := false
	for _, c := range pod.Spec.Containers {
		hasProxy = hasProxy || c.Name == proxyconf.ProxyContainer
	}
	for _, c := range pod.Spec.InitContainers {
		switch c.Name {
		case proxyconf.ProxyContainer:
			hasProxy = true
		case proxyconf.InitContainer:
			return false, "the pod has a " + proxyconf.InitContainer + " container, which installs the rules"
		}
	}
	if !hasProxy {
		return false, "the pod has no " + proxyconf.ProxyContainer + " container"
	}
	return true, ""
}
