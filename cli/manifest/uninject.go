package manifest

import (
	"strings"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Names of what injection adds to a pod.
var (
	injectedContainers = map[string]bool{
		proxyconf.ProxyContainer: true, proxyconf.InitContainer: true, proxyconf.NetworkValidatorContainer: true, "linkerd-debug": true,
	}
	injectedVolumes = map[string]bool{"linkerd-proxy-init-xtables-lock": true, "linkerd-identity-end-entity": true, "linkerd-identity-token": true}
	injectedAnnots  = map[string]bool{"linkerd.io/created-by": true, "linkerd.io/proxy-version": true, "linkerd.io/trust-root-sha256": true, "linkerd.io/identity-mode": true, "linkerd.io/inject": true}
	injectedLabels  = map[string]bool{"linkerd.io/control-plane-ns": true, "linkerd.io/workload-ns": true}
)

// Uninject removes the proxy, linkerd-init, their volumes and the injection annotations and
// labels from a copy of obj's pod template. It reports "<kind> \"name\" uninjected", or
// that nothing was injected.
func Uninject(obj runtime.Object) (runtime.Object, string, error) {
	obj = obj.DeepCopyObject()
	t := PodTemplate(obj)
	changed := false
	filter := func(cs []corev1.Container) []corev1.Container {
		out := cs[:0]
		for _, c := range cs {
			if injectedContainers[c.Name] {
				changed = true
				continue
			}
			out = append(out, c)
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	t.Spec.Containers = filter(t.Spec.Containers)
	t.Spec.InitContainers = filter(t.Spec.InitContainers)
	vols := t.Spec.Volumes[:0]
	for _, v := range t.Spec.Volumes {
		if !injectedVolumes[v.Name] {
			vols = append(vols, v)
		}
	}
	if len(vols) == 0 {
		vols = nil
	}
	t.Spec.Volumes = vols
	for k := range t.Meta.Annotations {
		if injectedAnnots[k] {
			delete(t.Meta.Annotations, k)
			changed = true
		}
	}
	for k := range t.Meta.Labels {
		if injectedLabels[k] || strings.HasPrefix(k, "linkerd.io/proxy-") {
			delete(t.Meta.Labels, k)
		}
	}
	if len(t.Meta.Annotations) == 0 {
		t.Meta.Annotations = nil
	}
	if len(t.Meta.Labels) == 0 {
		t.Meta.Labels = nil
	}
	if !changed {
		return obj, Describe(obj) + " skipped: not injected", nil
	}
	return obj, Describe(obj) + " uninjected", nil
}
