package manifest

import (
	"fmt"

	"github.com/l5d-go/l5d/pkg/inject"
	"k8s.io/apimachinery/pkg/runtime"
)

// InjectOptions are the flags of `linkerd inject`.
type InjectOptions struct {
	// Manual injects the proxy into the manifest with the injector library instead of only
	// annotating the pod template for the proxy-injector webhook.
	Manual bool
	// Ingress uses linkerd.io/inject: ingress instead of enabled.
	Ingress bool
	// SkipInboundPorts and SkipOutboundPorts set the config.linkerd.io/skip-*-ports annotations.
	SkipInboundPorts, SkipOutboundPorts string
	// Values are the mesh values for Manual (trust anchors, images); required with Manual.
	Values *inject.Values
	// Annotations are further configuration annotations (config.linkerd.io/* and the
	// alpha/beta ones) written on each pod template: the --proxy-* and other override flags.
	Annotations map[string]string
}

// Injector returns the Func of `linkerd inject` with o.
func Injector(o InjectOptions) Func {
	return func(obj runtime.Object) (runtime.Object, string, error) {
		obj = obj.DeepCopyObject()
		t := PodTemplate(obj)
		if t.Meta.Annotations == nil {
			t.Meta.Annotations = map[string]string{}
		}
		if t.Meta.Annotations[inject.AnnotationInject] == string(inject.ModeDisabled) {
			return obj, Describe(obj) + " skipped: " + inject.AnnotationInject + " is disabled", nil
		}
		mode := inject.ModeEnabled
		if o.Ingress {
			mode = inject.ModeIngress
		}
		t.Meta.Annotations[inject.AnnotationInject] = string(mode)
		if o.SkipInboundPorts != "" {
			t.Meta.Annotations[inject.AnnotationSkipInboundPorts] = o.SkipInboundPorts
		}
		if o.SkipOutboundPorts != "" {
			t.Meta.Annotations[inject.AnnotationSkipOutboundPorts] = o.SkipOutboundPorts
		}
		for k, v := range o.Annotations {
			t.Meta.Annotations[k] = v
		}
		if !o.Manual {
			return obj, Describe(obj) + " injected", nil
		}
		if o.Values == nil {
			return nil, "", fmt.Errorf("--manual needs the mesh configuration (trust anchors)")
		}
		if inject.HasProxy(t.Spec) {
			return obj, Describe(obj) + " skipped: already injected", nil
		}
		res, err := o.Values.InjectObject(inject.Namespace{}, obj, true)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", Describe(obj), err)
		}
		if !res.Decision.Inject {
			return res.Object, fmt.Sprintf("%s skipped: %s", Describe(obj), res.Decision.Reason), nil
		}
		return res.Object, Describe(obj) + " injected", nil
	}
}
