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
	(&pkgwebhook.Handler{NewObject: newPodView, ObjectReview: h.review, Metrics: h.Metrics, Timeout: h.Timeout, Log: h.logger()}).ServeHTTP(w, r)
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
	return h.review(ctx, req, nil)
}

// review is Review with the pod's view as pkg/webhook's Handler decoded it along with the
// review (NewObject: newPodView), or nil to decode it from req.Object.Raw.
func (h *Handler) review(ctx context.Context, req *admissionv1.AdmissionRequest, object any) *admissionv1.AdmissionResponse {
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
		h.count(ResultSkipped, "not_pod_create")
		return pkgwebhook.Allowed()
	}
	// Injection reads a few fields of the pod and only adds to it (inject.Additions): the
	// pod is decoded into a view of those fields (podView), and the patch is written from
	// the additions, without decoding, copying or encoding the rest of the pod. The API
	// server's second call, after the token volume is mounted into the injected
	// containers, brings the injected pod, which the view finds already injected.
	view, _ := object.(*podView)
	if view == nil {
		view = new(podView)
		if err := json.Unmarshal(req.Object.Raw, view); err != nil {
			return h.undecodable(req, err)
		}
	}
	pod := view.pod()
	nsName := req.Namespace
	if nsName == "" {
		nsName = pod.Namespace
	}
	ns, err := h.Cluster.Namespace(ctx, nsName)
	if err != nil {
		h.count(ResultError, "namespace_lookup")
		h.logger().Error("namespace lookup failed", "namespace", req.Namespace, "uid", req.UID, "err", err)
		return pkgwebhook.Denied(http.StatusInternalServerError, fmt.Sprintf("linkerd proxy injector: reading namespace %s: %v", nsName, err))
	}
	values := h.Values()
	d := inject.Decide(ns, &pod.ObjectMeta, &pod.Spec, false)
	if !d.Inject {
		h.count(ResultSkipped, string(d.Reason))
		h.logger().Debug("pod not injected", "namespace", req.Namespace, "uid", req.UID, "pod", podName(&pod.ObjectMeta), "reason", d.Reason)
		return pkgwebhook.Allowed()
	}
	owner := h.Cluster.Owner(ctx, nsName, pod)
	dryRun := req.DryRun != nil && *req.DryRun
	if ns.Name == "" {
		ns.Name = pod.Namespace
	}
	add, err := values.Additions(ns, owner.Owner, d.Mode, &pod.ObjectMeta, &pod.Spec)
	if err != nil {
		var ae *inject.AnnotationError
		reason := "values"
		if errors.As(err, &ae) {
			reason = "annotation"
		}
		h.count(ResultRefused, reason)
		h.logger().Warn("refusing pod", "namespace", req.Namespace, "uid", req.UID, "pod", podName(&pod.ObjectMeta), "err", err)
		h.event(owner, dryRun, corev1.EventTypeWarning, "InjectionRefused", "Linkerd proxy injection refused: "+err.Error())
		return pkgwebhook.Denied(http.StatusUnprocessableEntity, "linkerd proxy injector: "+err.Error())
	}
	patch, err := podPatch(pod, len(view.Spec.Volumes), add)
	if err != nil {
		h.count(ResultError, "patch")
		h.logger().Error("building patch", "namespace", req.Namespace, "uid", req.UID, "err", err)
		return pkgwebhook.Denied(http.StatusInternalServerError, "linkerd proxy injector: "+err.Error())
	}
	h.count(ResultInjected, string(d.Reason))
	h.logger().Info("injected pod", "namespace", req.Namespace, "uid", req.UID, "pod", podName(&pod.ObjectMeta),
		"owner_kind", owner.Kind, "owner", owner.Name, "mode", d.Mode)
	h.event(owner, dryRun, corev1.EventTypeNormal, "Injected", "Linkerd sidecar proxy injected")
	return pkgwebhook.Patched(patch)
}

// podPatch is the JSON patch adding add to pod (as the view has it, with volumes volumes),
// its operations in the order of the pod's fields, as pkg/webhook.JSONPatch would write
// them for pod and its injected copy.
func podPatch(pod *corev1.Pod, volumes int, add *inject.Additions) ([]byte, error) {
	w := pkgwebhook.NewPatchWriter()
	w.SetMembers("/metadata/labels", pod.Labels, add.Labels)
	w.SetMembers("/metadata/annotations", pod.Annotations, add.Annotations)
	pkgwebhook.AddItems(w, "/spec/volumes", volumes, nil, add.Volumes)
	pkgwebhook.AddItems(w, "/spec/initContainers", len(pod.Spec.InitContainers), add.InitContainers, nil)
	pkgwebhook.AddItems(w, "/spec/containers", len(pod.Spec.Containers), add.Containers, add.AppendContainers)
	return w.Bytes()
}

// undecodable answers a pod that does not decode.
func (h *Handler) undecodable(req *admissionv1.AdmissionRequest, err error) *admissionv1.AdmissionResponse {
	h.count(ResultError, "decode_pod")
	h.logger().Warn("cannot decode pod", "namespace", req.Namespace, "uid", req.UID, "err", err)
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

// podView is what injection reads of a pod (inject.Decide and inject.Values.Additions):
// its name, namespace, labels, annotations and controller, hostNetwork, the names and
// ports of its containers and how many volumes it has. Decoding it skips the rest of the
// pod (env, probes, volumes' sources, managedFields).
type podView struct {
	Metadata struct {
		Name            string                  `json:"name"`
		GenerateName    string                  `json:"generateName"`
		Namespace       string                  `json:"namespace"`
		Labels          map[string]string       `json:"labels"`
		Annotations     map[string]string       `json:"annotations"`
		OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		HostNetwork    bool            `json:"hostNetwork"`
		Volumes        []struct{}      `json:"volumes"` // counted: an item takes no memory
		InitContainers []containerView `json:"initContainers"`
		Containers     []containerView `json:"containers"`
	} `json:"spec"`
}

func newPodView() any { return new(podView) }

type containerView struct {
	Name  string                 `json:"name"`
	Ports []corev1.ContainerPort `json:"ports"`
}

// pod returns the view as a Pod holding the fields it has (the volumes counted only).
func (v *podView) pod() *corev1.Pod {
	containers := func(list []containerView) []corev1.Container {
		if list == nil {
			return nil
		}
		out := make([]corev1.Container, len(list))
		for i, c := range list {
			out[i].Name, out[i].Ports = c.Name, c.Ports
		}
		return out
	}
	m := &v.Metadata
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: m.Name, GenerateName: m.GenerateName, Namespace: m.Namespace,
			Labels: m.Labels, Annotations: m.Annotations, OwnerReferences: m.OwnerReferences},
		Spec: corev1.PodSpec{HostNetwork: v.Spec.HostNetwork,
			Containers: containers(v.Spec.Containers), InitContainers: containers(v.Spec.InitContainers)},
	}
}
