package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/k8s"
)

// Permissions lists the RBAC the injector needs: namespaces (config annotations), the owners
// it resolves and verifies before recording Events on them (cached, see OwnerCache), the trust-roots ConfigMap in
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
		{Verb: "list", Group: "apps", Resource: "replicasets"},
		{Verb: "list", Group: "apps", Resource: "statefulsets"},
		{Verb: "list", Group: "apps", Resource: "daemonsets"},
		{Verb: "list", Resource: "replicationcontrollers"},
		{Verb: "list", Group: "batch", Resource: "jobs"},
		{Verb: "watch", Group: "apps", Resource: "replicasets"},
		{Verb: "watch", Group: "apps", Resource: "statefulsets"},
		{Verb: "watch", Group: "apps", Resource: "daemonsets"},
		{Verb: "watch", Resource: "replicationcontrollers"},
		{Verb: "watch", Group: "batch", Resource: "jobs"},
		{Verb: "get", Resource: "configmaps", Namespace: controlPlaneNS},
		{Verb: "list", Resource: "configmaps", Namespace: controlPlaneNS},
		{Verb: "watch", Resource: "configmaps", Namespace: controlPlaneNS},
		{Verb: "create", Resource: "events"},
		{Verb: "patch", Resource: "events"},
	}
}

// KubeCluster reads namespaces (from Lister when set, else or when the lister has not seen a
// new namespace yet, from the API) and pod owners (from Owners when set, else or when the
// cache has not seen the owner with the pod's reference's UID yet, from the API).
// RBAC: get/list/watch namespaces, get (and list/watch for Owners) replicasets,
// statefulsets, daemonsets (apps), replicationcontrollers and jobs (batch).
type KubeCluster struct {
	Client kubernetes.Interface
	Lister corelisters.NamespaceLister
	Owners *OwnerCache
}

// ownerResources are the resources of the kinds a pod's controller reference names that
// Owner looks up, by kind.
var ownerResources = map[string]schema.GroupVersionResource{
	"ReplicaSet":            {Group: "apps", Version: "v1", Resource: "replicasets"},
	"StatefulSet":           {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"DaemonSet":             {Group: "apps", Version: "v1", Resource: "daemonsets"},
	"Job":                   {Group: "batch", Version: "v1", Resource: "jobs"},
	"ReplicationController": {Version: "v1", Resource: "replicationcontrollers"},
}

// OwnerCache holds the metadata (name, UID, owner references; not specs) of every object of
// the kinds that own pods (ReplicaSets, StatefulSets, DaemonSets, Jobs,
// ReplicationControllers), kept by list and watch, so that an admission finds a pod's
// owner without an API call, as Linkerd's injector does with its metadata informers.
type OwnerCache struct {
	listers map[string]cache.GenericLister
}

// NewOwnerCache requests a metadata informer for each owner kind from f; start and sync f
// (k8s.StartAndSync) before the cache is used.
func NewOwnerCache(f metadatainformer.SharedInformerFactory) *OwnerCache {
	c := &OwnerCache{listers: make(map[string]cache.GenericLister, len(ownerResources))}
	for kind, gvr := range ownerResources {
		c.listers[kind] = f.ForResource(gvr).Lister()
	}
	return c
}

// get returns the cached object of kind namespace/name, or nil.
func (c *OwnerCache) get(kind, namespace, name string) metav1.Object {
	l := c.listers[kind]
	if l == nil {
		return nil
	}
	obj, err := l.ByNamespace(namespace).Get(name)
	if err != nil {
		return nil
	}
	m, _ := obj.(metav1.Object)
	return m
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
	if k.Owners != nil {
		// A cached object with another UID may be stale (the owner recreated under the same
		// name): the API decides.
		if o := k.Owners.get(ref.Kind, namespace, ref.Name); o != nil && o.GetUID() == ref.UID {
			obj = o
		}
	}
	switch {
	case obj != nil:
	case ref.Kind == "ReplicaSet":
		obj, err = k.Client.AppsV1().ReplicaSets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return ResolvedOwner{Owner: inject.OwnerOf(pod)}
		}
	case ref.Kind == "Job":
		obj, err = k.Client.BatchV1().Jobs(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	case ref.Kind == "StatefulSet":
		obj, err = k.Client.AppsV1().StatefulSets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	case ref.Kind == "DaemonSet":
		obj, err = k.Client.AppsV1().DaemonSets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	case ref.Kind == "ReplicationController":
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
