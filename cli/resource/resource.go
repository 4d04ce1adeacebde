// Package resource turns the resource arguments of the linkerd CLI ("deploy/web",
// "pod/web-0", "web-0", "svc/web", "ns/emojivoto") into the pods they select, read from
// the Kubernetes API.
package resource

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// Kinds a Ref can name, in their canonical (singular, lower-case) spelling.
const (
	Pod         = "pod"
	Deployment  = "deployment"
	StatefulSet = "statefulset"
	DaemonSet   = "daemonset"
	ReplicaSet  = "replicaset"
	Job         = "job"
	Service     = "service"
	Namespace   = "namespace"
)

var aliases = map[string]string{
	"po": Pod, "pod": Pod, "pods": Pod,
	"deploy": Deployment, "deployment": Deployment, "deployments": Deployment,
	"sts": StatefulSet, "statefulset": StatefulSet, "statefulsets": StatefulSet,
	"ds": DaemonSet, "daemonset": DaemonSet, "daemonsets": DaemonSet,
	"rs": ReplicaSet, "replicaset": ReplicaSet, "replicasets": ReplicaSet,
	"job": Job, "jobs": Job,
	"svc": Service, "service": Service, "services": Service,
	"ns": Namespace, "namespace": Namespace, "namespaces": Namespace,
}

// Ref is a parsed resource argument: a kind and, unless it names every resource of the
// kind, a name.
type Ref struct {
	Kind, Name string
}

func (r Ref) String() string {
	if r.Name == "" {
		return r.Kind
	}
	return r.Kind + "/" + r.Name
}

// ParseKind returns the canonical kind of a kind as users type it ("deploy",
// "deployments", "po", ...), or an error listing what is accepted.
func ParseKind(kind string) (string, error) {
	if k, ok := aliases[strings.ToLower(kind)]; ok {
		return k, nil
	}
	return "", fmt.Errorf("unknown resource kind %q: want one of pod, deployment, statefulset, daemonset, replicaset, job, service or namespace (or po, deploy, sts, ds, rs, svc, ns)", kind)
}

// Parse parses "KIND/NAME" or a bare "NAME", which names a pod.
func Parse(arg string) (Ref, error) {
	kind, name, ok := strings.Cut(arg, "/")
	if !ok {
		kind, name = Pod, arg
	}
	k, err := ParseKind(kind)
	if err != nil {
		return Ref{}, fmt.Errorf("resource %q: %w", arg, err)
	}
	if name == "" || strings.Contains(name, "/") {
		return Ref{}, fmt.Errorf("resource %q: want KIND/NAME (e.g. deploy/web) or a pod name", arg)
	}
	return Ref{Kind: k, Name: name}, nil
}

// Pods returns the pods in namespace ns that ref selects, sorted by name: the named pod;
// the pods matched by a workload's or Service's selector; every pod of a namespace
// (ref.Name is then the namespace and ns is ignored). Pods that have finished (Succeeded
// or Failed) are left out except when named. A missing resource is an error naming it,
// as is a workload that selects no pod.
func Pods(ctx context.Context, client kubernetes.Interface, ns string, ref Ref) ([]corev1.Pod, error) {
	if ref.Kind == Pod && ref.Name != "" {
		p, err := client.CoreV1().Pods(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s: %w", ns, ref.Name, err)
		}
		return []corev1.Pod{*p}, nil
	}
	if ref.Kind == Namespace {
		if ref.Name != "" {
			ns = ref.Name
		}
		return list(ctx, client, ns, labels.Everything())
	}
	if ref.Name == "" {
		return list(ctx, client, ns, labels.Everything())
	}
	sel, err := Selector(ctx, client, ns, ref)
	if err != nil {
		return nil, err
	}
	pods, err := list(ctx, client, ns, sel)
	if err != nil {
		return nil, err
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("%s in namespace %s selects no running pod", ref, ns)
	}
	return pods, nil
}

// Selector returns the label selector of the workload or Service ref names in ns.
func Selector(ctx context.Context, client kubernetes.Interface, ns string, ref Ref) (labels.Selector, error) {
	var (
		ls  *metav1.LabelSelector
		err error
	)
	get := metav1.GetOptions{}
	switch ref.Kind {
	case Deployment:
		d, e := client.AppsV1().Deployments(ns).Get(ctx, ref.Name, get)
		if err = e; err == nil {
			ls = d.Spec.Selector
		}
	case StatefulSet:
		s, e := client.AppsV1().StatefulSets(ns).Get(ctx, ref.Name, get)
		if err = e; err == nil {
			ls = s.Spec.Selector
		}
	case DaemonSet:
		d, e := client.AppsV1().DaemonSets(ns).Get(ctx, ref.Name, get)
		if err = e; err == nil {
			ls = d.Spec.Selector
		}
	case ReplicaSet:
		r, e := client.AppsV1().ReplicaSets(ns).Get(ctx, ref.Name, get)
		if err = e; err == nil {
			ls = r.Spec.Selector
		}
	case Job:
		j, e := client.BatchV1().Jobs(ns).Get(ctx, ref.Name, get)
		if err = e; err == nil {
			ls = j.Spec.Selector
		}
	case Service:
		s, e := client.CoreV1().Services(ns).Get(ctx, ref.Name, get)
		if err = e; err == nil {
			if len(s.Spec.Selector) == 0 {
				return nil, fmt.Errorf("%s in namespace %s has no pod selector", ref, ns)
			}
			return labels.SelectorFromSet(s.Spec.Selector), nil
		}
	default:
		return nil, fmt.Errorf("%s: a %s does not select pods", ref, ref.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("%s in namespace %s: %w", ref, ns, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("%s in namespace %s has an invalid selector: %w", ref, ns, err)
	}
	if sel.Empty() {
		return nil, fmt.Errorf("%s in namespace %s has an empty selector", ref, ns)
	}
	return sel, nil
}

func list(ctx context.Context, client kubernetes.Interface, ns string, sel labels.Selector) ([]corev1.Pod, error) {
	l, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("listing pods in namespace %s: %w", ns, err)
	}
	pods := slices.DeleteFunc(l.Items, func(p corev1.Pod) bool { return Finished(&p) })
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return pods, nil
}

// Finished reports whether the pod has terminated for good (Succeeded or Failed).
func Finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// ProxyContainer is the name of the proxy container the injector adds to a meshed pod.
const ProxyContainer = "linkerd-proxy"

// Meshed reports whether the pod has a proxy container, as a regular or a native
// sidecar (restartable init) container.
func Meshed(p *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name == ProxyContainer {
				return true
			}
		}
	}
	return false
}

// ControlPlanePod returns the name of a running pod of the control-plane component
// (the linkerd.io/control-plane-component label, e.g. "destination") in namespace ns,
// preferring a ready one.
func ControlPlanePod(ctx context.Context, client kubernetes.Interface, ns, component string) (string, error) {
	l, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "linkerd.io/control-plane-component=" + component})
	if err != nil {
		return "", fmt.Errorf("listing the %s pods in namespace %s: %w", component, ns, err)
	}
	slices.SortFunc(l.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	running := ""
	for _, p := range l.Items {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		if ready(&p) {
			return p.Name, nil
		}
		if running == "" {
			running = p.Name
		}
	}
	if running == "" {
		return "", fmt.Errorf("no running linkerd-%s pod in namespace %s (is the control plane installed? try linkerd check)", component, ns)
	}
	return running, nil
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
