package inject

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Result is the outcome of injecting one object.
type Result struct {
	// Object is the injected copy, or the input itself when Decision.Inject is false.
	Object runtime.Object
	// Decision says whether (and why not) the object was injected.
	Decision Decision
}

// InjectObject injects the pod template of a workload (Deployment, StatefulSet, DaemonSet,
// ReplicaSet, ReplicationController, Job, CronJob) or a Pod, on a deep copy, following Decide
// (force treats a missing linkerd.io/inject as enabled, as client-side injection does). This
// is the entry point of `linkerd inject --manual`; the webhook calls InjectPod. Workload
// templates get the linkerd.io/proxy-<kind> label naming the workload itself. Kinds without a
// pod template are returned unchanged with ReasonNotEnabled and ErrNoPodTemplate.
func (v *Values) InjectObject(ns Namespace, obj runtime.Object, force bool) (Result, error) {
	out := obj.DeepCopyObject()
	meta, spec := PodTemplate(out)
	if meta == nil {
		return Result{Object: obj, Decision: Decision{Reason: ReasonNotEnabled}}, fmt.Errorf("%T: %w", obj, ErrNoPodTemplate)
	}
	var owner Owner
	var podNS string
	pod, isPod := out.(*corev1.Pod)
	if acc, err := apimeta.Accessor(out); err == nil {
		podNS = acc.GetNamespace()
		// The workload itself: its Go type's name is its kind.
		owner = Owner{Kind: reflect.TypeOf(out).Elem().Name(), Name: acc.GetName()}
	}
	if isPod {
		owner = OwnerOf(pod)
	}
	if ns.Name == "" {
		ns.Name = podNS
	}
	d := Decide(ns, meta, spec, force)
	if !d.Inject {
		return Result{Object: obj, Decision: d}, nil
	}
	if err := v.InjectPodSpec(ns, owner, d.Mode, meta, spec); err != nil {
		return Result{Object: obj, Decision: d}, err
	}
	if !isPod && ns.Name == "" {
		// A template without a namespace gets the label from the pod at admission time.
		delete(meta.Labels, LabelWorkloadNS)
	}
	return Result{Object: out, Decision: d}, nil
}

// ErrNoPodTemplate is returned by InjectObject for kinds that hold no pod template.
var ErrNoPodTemplate = errors.New("object has no pod template")

// PodTemplate returns the pod metadata and spec inside obj, pointers into it: a Pod's own,
// or the pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet,
// ReplicationController, Job or CronJob; nil for other kinds and a ReplicationController
// without a template.
func PodTemplate(obj runtime.Object) (*metav1.ObjectMeta, *corev1.PodSpec) {
	var t *corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *corev1.Pod:
		return &o.ObjectMeta, &o.Spec
	case *appsv1.Deployment:
		t = &o.Spec.Template
	case *appsv1.StatefulSet:
		t = &o.Spec.Template
	case *appsv1.DaemonSet:
		t = &o.Spec.Template
	case *appsv1.ReplicaSet:
		t = &o.Spec.Template
	case *corev1.ReplicationController:
		t = o.Spec.Template
	case *batchv1.Job:
		t = &o.Spec.Template
	case *batchv1.CronJob:
		t = &o.Spec.JobTemplate.Spec.Template
	}
	if t == nil {
		return nil, nil
	}
	return &t.ObjectMeta, &t.Spec
}

// InjectPod decides and injects a pod as the admission webhook sees it: ns is its namespace,
// owner its workload (OwnerOf, or the webhook's resolution through the API). It returns the
// injected copy (nil when not injected) and the decision.
func (v *Values) InjectPod(ns Namespace, owner Owner, pod *corev1.Pod) (*corev1.Pod, Decision, error) {
	d := Decide(ns, &pod.ObjectMeta, &pod.Spec, false)
	if !d.Inject {
		return nil, d, nil
	}
	out := pod.DeepCopy()
	if ns.Name == "" {
		ns.Name = pod.Namespace
	}
	if err := v.InjectPodSpec(ns, owner, d.Mode, &out.ObjectMeta, &out.Spec); err != nil {
		return nil, d, err
	}
	return out, d, nil
}

// OwnerOf names a pod's workload from its controller reference alone: a ReplicaSet whose
// name is "<deployment>-<pod-template-hash>" is reported as that Deployment, a Job whose
// controller is a CronJob cannot be seen from the pod and stays a Job. A pod without a
// controller has no Owner.
func OwnerOf(pod *corev1.Pod) Owner {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return Owner{}
	}
	if ref.Kind == "ReplicaSet" {
		if h := pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; h != "" {
			if name, ok := strings.CutSuffix(ref.Name, "-"+h); ok && name != "" {
				return Owner{Kind: "Deployment", Name: name}
			}
		}
	}
	return Owner{Kind: ref.Kind, Name: ref.Name}
}
