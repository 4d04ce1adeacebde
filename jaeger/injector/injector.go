// Package injector is the jaeger extension's injector: a mutating admission webhook that
// points the proxies of new meshed pods at the trace collector, as Linkerd's
// jaeger-injector does. To each pod with a linkerd-proxy container it adds the
// LINKERD2_PROXY_TRACE_* variables (collector address and identity, protocol, service
// name, the pod's labels as attributes through a downward API volume, the pod's uid and
// the container's name as extra attributes) and the annotation
// jaeger.linkerd.io/tracing-enabled: "true". The namespace's, then the pod's,
// config.linkerd.io/trace-collector and config.alpha.linkerd.io/trace-collector-service-account
// annotations override the collector. Pods already configured are left unchanged.
package injector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/pkg/webhook"
)

// Where the pod's labels are mounted for the proxy, as in Linkerd.
const (
	PodinfoVolume    = "linkerd-podinfo"
	PodinfoMountPath = "/var/run/linkerd/podinfo"
	LabelsPath       = PodinfoMountPath + "/labels"
)

// Injector answers AdmissionReviews for Pods.
type Injector struct {
	// CollectorAddr is the default collector's host:port
	// (collector.linkerd-jaeger:4317); CollectorServiceAccount its service account.
	CollectorAddr           string
	CollectorServiceAccount string
	// ServiceName is the proxies' LINKERD2_PROXY_TRACE_SERVICE_NAME (linkerd-proxy).
	ServiceName string
	// LinkerdNamespace and TrustDomain complete the collector's identity.
	LinkerdNamespace, TrustDomain string
	// Kube reads the pod's namespace (for its annotations).
	Kube kubernetes.Interface
	// Metrics, when set, counts the webhook's requests.
	Metrics *webhook.Metrics
	Log     *slog.Logger
	// Timeout bounds one review; 5s when zero.
	Timeout time.Duration
}

// ServeHTTP implements http.Handler through pkg/webhook's AdmissionReview handling.
func (i *Injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(&webhook.Handler{Review: i.Review, Metrics: i.Metrics, Timeout: i.Timeout, Log: i.Log}).ServeHTTP(w, r)
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
	if !inject.HasProxy(&pod.Spec) || pod.Annotations[proxyconf.AnnTracingEnabled] == "true" || configured(&pod.Spec) {
		return ok
	}
	ns, err := i.Kube.CoreV1().Namespaces().Get(ctx, req.Namespace, metav1.GetOptions{})
	if err != nil {
		i.Log.Warn("jaeger injector: reading the pod's namespace", "namespace", req.Namespace, "err", err)
		return failed(http.StatusInternalServerError, fmt.Sprintf("reading namespace %s: %v", req.Namespace, err))
	}
	addr, sa := i.CollectorAddr, i.CollectorServiceAccount
	for _, ann := range []map[string]string{ns.Annotations, pod.Annotations} {
		if v, ok := ann[proxyconf.AnnTraceCollector]; ok {
			addr = v
		}
		if v, ok := ann[proxyconf.AnnTraceCollectorServiceAccount]; ok {
			sa = v
		}
	}
	if _, _, err := net.SplitHostPort(addr); err != nil || addr == "" {
		return failed(http.StatusUnprocessableEntity, fmt.Sprintf("%s %q: want host:port", proxyconf.AnnTraceCollector, addr))
	}
	identity := certs.WorkloadIdentity(sa, collectorNamespace(addr, req.Namespace), i.LinkerdNamespace, i.TrustDomain)

	after := pod.DeepCopy()
	if after.Annotations == nil {
		after.Annotations = map[string]string{}
	}
	after.Annotations[proxyconf.AnnTracingEnabled] = "true"
	for _, list := range [][]corev1.Container{after.Spec.Containers, after.Spec.InitContainers} {
		for c := range list {
			if list[c].Name != inject.ProxyContainerName {
				continue
			}
			env := setEnv(list[c].Env, corev1.EnvVar{Name: "_pod_uid",
				ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}})
			env = setEnv(env, corev1.EnvVar{Name: "_pod_containerName", Value: inject.ProxyContainerName})
			for _, e := range [][2]string{
				{proxyconf.EnvTraceAttributesPath, LabelsPath},
				{proxyconf.EnvTraceCollectorAddr, addr},
				{proxyconf.EnvTraceProtocol, proxyconf.TraceProtocolOpenTelemetry},
				{proxyconf.EnvTraceServiceName, i.ServiceName},
				{proxyconf.EnvTraceCollectorName, identity},
				{proxyconf.EnvTraceExtraAttributes, "k8s.pod.uid=$(_pod_uid)\nk8s.container.name=$(_pod_containerName)"},
			} {
				env = setEnv(env, corev1.EnvVar{Name: e[0], Value: e[1]})
			}
			list[c].Env = env
			list[c].VolumeMounts = append(list[c].VolumeMounts, corev1.VolumeMount{Name: PodinfoVolume, MountPath: PodinfoMountPath, ReadOnly: true})
		}
	}
	after.Spec.Volumes = append(after.Spec.Volumes, corev1.Volume{Name: PodinfoVolume, VolumeSource: corev1.VolumeSource{
		DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}})
	patch, err := webhook.JSONPatch(&pod, after)
	if err != nil {
		return failed(http.StatusInternalServerError, fmt.Sprintf("building the patch: %v", err))
	}
	return webhook.Patched(patch)
}

// configured reports whether the pod's proxy already has a collector (set by hand, or by
// an earlier invocation).
func configured(spec *corev1.PodSpec) bool {
	for _, list := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for _, c := range list {
			if c.Name != inject.ProxyContainerName {
				continue
			}
			for _, e := range c.Env {
				if e.Name == proxyconf.EnvTraceCollectorAddr || e.Name == proxyconf.EnvTraceAttributesPath {
					return true
				}
			}
		}
	}
	return false
}

// collectorNamespace is the namespace of the collector at addr: the second label of a
// Service name (collector.linkerd-jaeger[.svc...]:port), else the pod's namespace, as
// Linkerd's injector reads it.
func collectorNamespace(addr, podNamespace string) string {
	host, _, _ := net.SplitHostPort(addr)
	if labels := strings.Split(host, "."); len(labels) > 1 && net.ParseIP(host) == nil {
		return labels[1]
	}
	return podNamespace
}

// setEnv sets e in env, in place when its name is there.
func setEnv(env []corev1.EnvVar, e corev1.EnvVar) []corev1.EnvVar {
	for i := range env {
		if env[i].Name == e.Name {
			env[i] = e
			return env
		}
	}
	return append(env, e)
}

func failed(code int32, msg string) *admissionv1.AdmissionResponse {
	return webhook.Denied(code, "jaeger injector: "+msg)
}
