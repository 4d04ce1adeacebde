package k8s

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/l5d-go/l5d/pkg/proxyconf"
)

// ContainerPortNames resolves the names of the pod's container ports (init containers
// included, for native sidecars) to their numbers, for proxyconf.ParseOpaquePorts on a pod's
// annotation. A nil pod resolves nothing.
func ContainerPortNames(spec *corev1.PodSpec) proxyconf.NamedPorts {
	if spec == nil {
		return nil
	}
	return func(name string) (uint16, bool) {
		for _, cs := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
			for _, c := range cs {
				for _, p := range c.Ports {
					if p.Name == name && p.ContainerPort > 0 && p.ContainerPort <= 65535 {
						return uint16(p.ContainerPort), true
					}
				}
			}
		}
		return 0, false
	}
}

// ServicePortNames resolves the names of the Service's ports to their numbers, for
// proxyconf.ParseOpaquePorts on a Service's annotation. A nil Service resolves nothing.
func ServicePortNames(svc *corev1.Service) proxyconf.NamedPorts {
	if svc == nil {
		return nil
	}
	return func(name string) (uint16, bool) {
		for _, p := range svc.Spec.Ports {
			if p.Name == name && p.Port > 0 && p.Port <= 65535 {
				return uint16(p.Port), true
			}
		}
		return 0, false
	}
}
