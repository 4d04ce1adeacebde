package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	"github.com/l5d-go/l5d/pkg/inject"
	pkgwebhook "github.com/l5d-go/l5d/pkg/webhook"
)

// Cluster is what the webhook reads from the API server for one pod.
type Cluster interface {
	// Namespace returns the labels and annotations of namespace name.
	Namespace(ctx context.Context, name string) (inject.Namespace, error)
	// Owner names the workload pod belongs to (Deployment rather than ReplicaSet, CronJob
	// rather than Job); it falls back to inject.OwnerOf and never fails.
	Owner(ctx context.Context, namespace string, pod *corev1.Pod) ResolvedOwner
}

// ResolvedOwner is the workload a pod belongs to.
type ResolvedOwner struct {
	// Owner names the workload for the pod's labels (a best guess when unverified).
	inject.Owner
	// Verified is that workload as the API server has it (with its UID), when the object
	// named by the pod's controller reference exists with the reference's UID; nil
	// otherwise. Events are recorded only on a verified owner, so that a caller forging
	// AdmissionReviews cannot make the injector write Events about objects of its choosing.
	Verified *corev1.ObjectReference
}

// Handler answers AdmissionReviews for Pods. Values, Cluster and Metrics are required;
// Events and Log are optional.
type Handler struct {
	// Values returns the current mesh configuration (it may change, e.g. on anchor rotation).
	Values  func() *inject.Values
	Cluster Cluster
	Metrics *Metrics
	// Events, when set, records on the pod's owner that its pod was injected or refused:
	// only for requests that are not dry runs, and only on an owner Cluster verified.
	Events record.EventRecorder
	Log    *slog.Logger
	// Timeout bounds the API lookups of one review; 5s when zero.
	Timeout time.Duration
}

// ServeHTTP answers AdmissionReviews through pkg/webhook's Handler: a body that is not an
// AdmissionReview gets HTTP 400 with the reason, and a log line.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(&pkgwebhook.Handler{Review: h.Review, Metrics: h.Metrics, Timeout: h.Timeout, Log: h.logger()}).ServeHTTP(w, r)
}

func (h *Handler) logger() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// Review answers one admission request: Pod CREATEs are injected when inject.Decide says so;
// everything else is admitted unchanged. A pod whose annotations cannot be used is refused
// with a message naming the annotation.
func (h *Handler) Review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	log := h.logger().With("namespace", req.Namespace, "uid", req.UID)
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
		h.count(ResultSkipped, "not_pod_create")
		return pkgwebhook.Allowed()
	}
	// The decision needs a few fields of the pod: it is made on them (podView), and only a
	// pod to inject is decoded whole. The API server's second call, after the token volume
	// is mounted into the injected containers, brings the injected pod: it is not decoded.
	var view podView
	if err := json.Unmarshal(req.Object.Raw, &view); err != nil {
		return h.undecodable(log, err)
	}
	nsName := req.Namespace
	if nsName == "" {
		nsName = view.Metadata.Namespace
	}
	ns, err := h.Cluster.Namespace(ctx, nsName)
	if err != nil {
		h.count(ResultError, "namespace_lookup")
		log.Error("namespace lookup failed", "err", err)
		return pkgwebhook.Denied(http.StatusInternalServerError, fmt.Sprintf("linkerd proxy injector: reading namespace %s: %v", nsName, err))
	}
	values := h.Values()
	meta, spec := view.decisionInput()
	d := inject.Decide(ns, meta, spec, false)
	if !d.Inject {
		h.count(ResultSkipped, string(d.Reason))
		log.Debug("pod not injected", "pod", podName(meta), "reason", d.Reason)
		return pkgwebhook.Allowed()
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return h.undecodable(log, err)
	}
	owner := h.Cluster.Owner(ctx, nsName, &pod)
	dryRun := req.DryRun != nil && *req.DryRun
	injected, _, err := values.InjectPod(ns, owner.Owner, &pod)
	if err != nil {
		var ae *inject.AnnotationError
		reason := "values"
		if errors.As(err, &ae) {
			reason = "annotation"
		}
		h.count(ResultRefused, reason)
		log.Warn("refusing pod", "pod", podName(&pod.ObjectMeta), "err", err)
		h.event(owner, dryRun, corev1.EventTypeWarning, "InjectionRefused", "Linkerd proxy injection refused: "+err.Error())
		return pkgwebhook.Denied(http.StatusUnprocessableEntity, "linkerd proxy injector: "+err.Error())
	}
	patch, err := pkgwebhook.JSONPatch(&pod, injected)
	if err != nil {
		h.count(ResultError, "patch")
		log.Error("building patch", "err", err)
		return pkgwebhook.Denied(http.StatusInternalServerError, "linkerd proxy injector: "+err.Error())
	}
	h.count(ResultInjected, string(d.Reason))
	log.Info("injected pod", "pod", podName(&pod.ObjectMeta), "owner_kind", owner.Kind, "owner", owner.Name, "mode", d.Mode)
	h.event(owner, dryRun, corev1.EventTypeNormal, "Injected", "Linkerd sidecar proxy injected")
	return pkgwebhook.Patched(patch)
}

// undecodable answers a pod that does not decode.
func (h *Handler) undecodable(log *slog.Logger, err error) *admissionv1.AdmissionResponse {
	h.count(ResultError, "decode_pod")
	log.Warn("cannot decode pod", "err", err)
	return pkgwebhook.Denied(http.StatusBadRequest, fmt.Sprintf("linkerd proxy injector: cannot decode the pod: %v", err))
}

func (h *Handler) count(result, reason string) {
	h.Metrics.Responses.WithLabelValues(result, reason).Inc()
}

// event records an Event on the verified owner; dry runs and unverified owners get none.
func (h *Handler) event(owner ResolvedOwner, dryRun bool, kind, reason, msg string) {
	if h.Events == nil || dryRun || owner.Verified == nil {
		return
	}
	h.Events.Event(owner.Verified, kind, reason, msg)
}

func podName(p *metav1.ObjectMeta) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName + "*"
}

// podView is what inject.Decide reads of a pod: its annotations, hostNetwork and the names
// of its containers (with its name and namespace for logs). Decoding it skips the rest of
// the pod (env, probes, volumes, managedFields).
type podView struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		HostNetwork    bool            `json:"hostNetwork"`
		Containers     []containerName `json:"containers"`
		InitContainers []containerName `json:"initContainers"`
	} `json:"spec"`
}

type containerName struct {
	Name string `json:"name"`
}

// decisionInput returns the view as the metadata and spec inject.Decide takes, holding the
// fields it reads.
func (v *podView) decisionInput() (*metav1.ObjectMeta, *corev1.PodSpec) {
	names := func(list []containerName) []corev1.Container {
		out := make([]corev1.Container, len(list))
		for i, c := range list {
			out[i].Name = c.Name
		}
		return out
	}
	m := &v.Metadata
	return &metav1.ObjectMeta{Name: m.Name, GenerateName: m.GenerateName, Namespace: m.Namespace, Annotations: m.Annotations},
		&corev1.PodSpec{HostNetwork: v.Spec.HostNetwork, Containers: names(v.Spec.Containers), InitContainers: names(v.Spec.InitContainers)}
}
