package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/l5d-go/l5d/injector/inject"
	"github.com/l5d-go/l5d/pkg/k8s"
)

// Permissions lists the RBAC the injector needs: namespaces (config annotations), the owners
// it resolves and verifies before recording Events on them, the trust-roots ConfigMap in
// controlPlaneNS, and events.
func Permissions(controlPlaneNS string) []k8s.Permission {
	return []k8s.Permission{
		{Verb: "get", Resource: "namespaces"},
		{Verb: "list", Resource: "namespaces"},
		{Verb: "watch", Resource: "namespaces"},
		{Verb: "get", Group: "apps", Resource: "replicasets"},
		{Verb: "get", Group: "apps", Resource: "statefulsets"},
		{Verb: "get", Group: "apps", Resource: "daemonsets"},
		{Verb: "get", Resource: "replicationcontrollers"},
		{Verb: "get", Group: "batch", Resource: "jobs"},
		{Verb: "get", Resource: "configmaps", Namespace: controlPlaneNS},
		{Verb: "list", Resource: "configmaps", Namespace: controlPlaneNS},
		{Verb: "watch", Resource: "configmaps", Namespace: controlPlaneNS},
		{Verb: "create", Resource: "events"},
		{Verb: "patch", Resource: "events"},
	}
}

// KubeCluster reads namespaces (from Lister when set, else or when the lister has not seen a
// new namespace yet, from the API) and pod owners through the API server.
// RBAC: get/list/watch namespaces, get replicasets, statefulsets, daemonsets (apps),
// replicationcontrollers and jobs (batch).
type KubeCluster struct {
	Client kubernetes.Interface
	Lister corelisters.NamespaceLister
}

// Namespace implements Cluster.
func (k *KubeCluster) Namespace(ctx context.Context, name string) (inject.Namespace, error) {
	var ns *corev1.Namespace
	var err error
	if k.Lister != nil {
		ns, err = k.Lister.Get(name)
	}
	if k.Lister == nil || apierrors.IsNotFound(err) {
		ns, err = k.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return inject.Namespace{}, fmt.Errorf("get namespace %s: %w", name, err)
	}
	return inject.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}, nil
}

// Owner implements Cluster: a ReplicaSet controlled by a Deployment becomes the Deployment,
// a Job controlled by a CronJob becomes the CronJob. Lookup failures fall back to
// inject.OwnerOf. The owner is Verified when the object the pod's controller reference
// names exists in namespace with the reference's UID (the parent is then taken from that
// object's own controller reference, as the API server has it).
func (k *KubeCluster) Owner(ctx context.Context, namespace string, pod *corev1.Pod) ResolvedOwner {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return ResolvedOwner{}
	}
	var obj metav1.Object
	var err error
	switch ref.Kind {
	case "ReplicaSet":
		obj, err = k.Client.AppsV1().ReplicaSets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return ResolvedOwner{Owner: inject.OwnerOf(pod)}
		}
	case "Job":
		obj, err = k.Client.BatchV1().Jobs(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	case "StatefulSet":
		obj, err = k.Client.AppsV1().StatefulSets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	case "DaemonSet":
		obj, err = k.Client.AppsV1().DaemonSets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	case "ReplicationController":
		obj, err = k.Client.CoreV1().ReplicationControllers(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	}
	out := ResolvedOwner{Owner: inject.Owner{Kind: ref.Kind, Name: ref.Name}}
	if err != nil || obj == nil || obj.GetUID() != ref.UID {
		return out
	}
	out.Verified = &corev1.ObjectReference{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: namespace, Name: ref.Name, UID: ref.UID}
	if parent := metav1.GetControllerOfNoCopy(obj); parent != nil && (ref.Kind == "ReplicaSet" || ref.Kind == "Job") {
		out.Owner = inject.Owner{Kind: parent.Kind, Name: parent.Name}
		out.Verified = &corev1.ObjectReference{APIVersion: parent.APIVersion, Kind: parent.Kind, Namespace: namespace, Name: parent.Name, UID: parent.UID}
	}
	return out
}
