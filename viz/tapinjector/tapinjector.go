// Package tapinjector is linkerd-viz's tap injector: a mutating admission webhook that
// enables tap on meshed pods as they are created. To each pod with a linkerd-proxy
// container it adds LINKERD2_PROXY_TAP_SVC_NAME (the tap API's identity, the only client
// the proxy's tap server accepts) and the annotation viz.linkerd.io/tap-enabled: "true",
// unless the pod or its namespace is annotated config.linkerd.io/disable-tap: "true".
// It runs after the proxy injector (the webhook configuration asks to be reinvoked), and
// leaves pods it already handled unchanged.
package tapinjector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/webhook"
)

// Injector answers AdmissionReviews for Pods.
type Injector struct {
	// TapIdentity is the tap API's identity, e.g.
	// tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local.
	TapIdentity string
	// Kube reads the pod's namespace (for its disable-tap annotation).
	Kube kubernetes.Interface
	Log  *slog.Logger
	// Timeout bounds one review; 5s when zero.
	Timeout time.Duration
}

// ServeHTTP implements http.Handler through pkg/webhook's AdmissionReview handling.
func (i *Injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(&webhook.Handler{Review: i.Review, Timeout: i.Timeout, Log: i.Log}).ServeHTTP(w, r)
}

// Review answers one admission request: pods as described in the package documentation
// get a JSON patch; anything else is admitted unchanged. A namespace that cannot be read
// fails the review (the webhook's failurePolicy decides what happens to the pod).
func (i *Injector) Review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	ok := webhook.Allowed()
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
		return ok
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return failed(http.StatusBadRequest, fmt.Sprintf("decoding the pod: %v", err))
	}
	if !inject.HasProxy(&pod.Spec) || pod.Annotations[inject.AnnotationDisableTap] == "true" {
		return ok
	}
	ns, err := i.Kube.CoreV1().Namespaces().Get(ctx, req.Namespace, metav1.GetOptions{})
	if err != nil {
		i.Log.Warn("tap injector: reading the pod's namespace", "namespace", req.Namespace, "err", err)
		return failed(http.StatusInternalServerError, fmt.Sprintf("reading namespace %s: %v", req.Namespace, err))
	}
	if ns.Annotations[inject.AnnotationDisableTap] == "true" {
		return ok
	}
	after := pod.DeepCopy()
	if after.Annotations == nil {
		after.Annotations = map[string]string{}
	}
	after.Annotations[inject.AnnotationTapEnabled] = "true"
	for _, list := range [][]corev1.Container{after.Spec.Containers, after.Spec.InitContainers} {
		for c := range list {
			if list[c].Name == inject.ProxyContainerName {
				list[c].Env = setEnv(list[c].Env, inject.EnvTapSvcName, i.TapIdentity)
			}
		}
	}
	patch, err := webhook.JSONPatch(&pod, after)
	if err != nil {
		return failed(http.StatusInternalServerError, fmt.Sprintf("building the patch: %v", err))
	}
	if string(patch) == "[]" {
		return ok
	}
	return webhook.Patched(patch)
}

// setEnv sets name to value in env, in place when it is there.
func setEnv(env []corev1.EnvVar, name, value string) []corev1.EnvVar {
	for i := range env {
		if env[i].Name == name {
			env[i] = corev1.EnvVar{Name: name, Value: value}
			return env
		}
	}
	return append(env, corev1.EnvVar{Name: name, Value: value})
}

func failed(code int32, msg string) *admissionv1.AdmissionResponse {
	return webhook.Denied(code, "tap injector: "+msg)
}
