// Package vizext installs, lists and removes the viz extension's objects: the values
// `linkerd viz install` renders the linkerd-viz chart with, the objects `linkerd viz
// uninstall` and `linkerd viz prune` print for `kubectl delete -f -`, and the policy
// `linkerd viz allow-scrapes` prints. Every object of the extension carries the label
// linkerd.io/extension=viz, which is how they are found again.
package vizext

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/deploy"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// Label and value every object of the extension carries; DefaultNamespace is where
// `linkerd viz install` puts it.
const (
	Label            = "linkerd.io/extension"
	LabelValue       = "viz"
	Selector         = Label + "=" + LabelValue
	DefaultNamespace = "linkerd-viz"
)

// Options say how to render the extension.
type Options struct {
	// Namespace is the extension's namespace (default linkerd-viz).
	Namespace string
	// LinkerdNamespace is the control plane's namespace.
	LinkerdNamespace string
	// Version, when set, is the chart's linkerdVersion (the metrics-api image tag).
	Version string
	// Values are the user's -f/--set/--set-string values, applied last.
	Values install.ValueOptions
}

// Render renders the linkerd-viz chart for o. cluster, when non-nil, holds the values of
// the installed control plane (its linkerd-config ConfigMap's "values"): its clusterDomain
// is kept, so that the extension matches the mesh it joins.
func Render(o Options, cluster map[string]any) ([]byte, error) {
	vals, err := Values(o, cluster)
	if err != nil {
		return nil, err
	}
	return deploy.Render(deploy.VizChart, deploy.Options{Namespace: namespace(o.Namespace), Values: vals})
}

// Values returns the chart values for o (see Render).
func Values(o Options, cluster map[string]any) (map[string]any, error) {
	return o.Values.MergeInto(BaseValues(o, cluster, "clusterDomain"))
}

// BaseValues are the values every extension chart takes from o and from the installed
// control plane's values (cluster, which may be nil): installNamespace, linkerdNamespace,
// linkerdVersion, and the keys of cluster named by keep (such as clusterDomain), so that
// the extension matches the mesh it joins. The user's values are merged over them last.
func BaseValues(o Options, cluster map[string]any, keep ...string) map[string]any {
	vals := map[string]any{"installNamespace": true}
	if o.LinkerdNamespace != "" {
		vals["linkerdNamespace"] = o.LinkerdNamespace
	}
	for _, k := range keep {
		if d, ok := cluster[k].(string); ok && d != "" {
			vals[k] = d
		}
	}
	if o.Version != "" {
		vals["linkerdVersion"] = o.Version
	}
	return vals
}

// ControlPlaneValues reads the values the control plane in namespace ns was installed with,
// failing with advice when there is no control plane there.
func ControlPlaneValues(ctx context.Context, kube kubernetes.Interface, ns string) (map[string]any, error) {
	cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, "linkerd-config", metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("no Linkerd control plane in namespace %q (no linkerd-config ConfigMap): install it first with `linkerd install`, or render the extension without the cluster with --ignore-cluster", ns)
		}
		return nil, fmt.Errorf("reading the control plane's linkerd-config in namespace %q (use --ignore-cluster to render without the cluster): %w", ns, err)
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(cm.Data["values"]), &vals); err != nil {
		return nil, fmt.Errorf("linkerd-config values: %w", err)
	}
	return vals, nil
}

func namespace(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}

// kind is one kind of object the extension may create.
type kind struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
}

// Kinds of object the extension creates (or will, with tap and the dashboard), other than
// the workloads and configuration inside its namespace, which go with the namespace.
var kinds = []kind{
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, "ClusterRole", false},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, "ClusterRoleBinding", false},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, "Role", true},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}, "RoleBinding", true},
	{schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}, "APIService", false},
	{schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}, "MutatingWebhookConfiguration", false},
	{schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}, "ValidatingWebhookConfiguration", false},
	{schema.GroupVersionResource{Group: "policy.linkerd.io", Version: "v1beta1", Resource: "servers"}, "Server", true},
	{schema.GroupVersionResource{Group: "policy.linkerd.io", Version: "v1alpha1", Resource: "authorizationpolicies"}, "AuthorizationPolicy", true},
	{schema.GroupVersionResource{Group: "policy.linkerd.io", Version: "v1alpha1", Resource: "meshtlsauthentications"}, "MeshTLSAuthentication", true},
	{schema.GroupVersionResource{Group: "policy.linkerd.io", Version: "v1alpha1", Resource: "networkauthentications"}, "NetworkAuthentication", true},
	{schema.GroupVersionResource{Group: "linkerd.io", Version: "v1alpha2", Resource: "serviceprofiles"}, "ServiceProfile", true},
}

var namespaces = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// Ref names one object for `kubectl delete -f -`.
type Ref struct {
	APIVersion, Kind, Namespace, Name string
}

func (r Ref) key() string { return r.Kind + "/" + r.Namespace + "/" + r.Name }

// Installed lists the extension's objects in the cluster: its cluster-scoped objects, its
// objects in the extension's namespaces, then those namespaces (every Namespace labelled
// linkerd.io/extension=viz), in an order `kubectl delete -f -` can follow. Objects
// labelled as the extension's in other namespaces (the policy of `linkerd viz
// allow-scrapes`, which the user applied) are left out, except the tap API's RoleBinding
// in kube-system.
func Installed(ctx context.Context, dyn dynamic.Interface) ([]Ref, error) {
	return InstalledBy(ctx, dyn, Selector)
}

// InstalledBy is Installed for the extension whose objects carry selector (such as
// linkerd.io/extension=jaeger): every extension labels its objects the same way.
func InstalledBy(ctx context.Context, dyn dynamic.Interface, selector string) ([]Ref, error) {
	sel := metav1.ListOptions{LabelSelector: selector}
	nsList, err := dyn.Resource(namespaces).List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("listing the extension's namespaces: %w", err)
	}
	own := map[string]bool{}
	for _, n := range nsList.Items {
		own[n.GetName()] = true
	}
	var refs []Ref
	for _, k := range kinds {
		l, err := dyn.Resource(k.gvr).List(ctx, sel)
		if apierrors.IsNotFound(err) {
			continue // the kind is not served (its CRD or API group is absent)
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", k.gvr.Resource, err)
		}
		for _, o := range l.Items {
			if k.namespaced && !own[o.GetNamespace()] && !authReader(k.kind, o.GetNamespace()) {
				continue
			}
			refs = append(refs, Ref{k.gvr.GroupVersion().String(), k.kind, o.GetNamespace(), o.GetName()})
		}
	}
	sort.SliceStable(refs, func(i, j int) bool {
		ci, cj := refs[i].Namespace == "", refs[j].Namespace == ""
		if ci != cj {
			return ci // cluster-scoped first
		}
		return refs[i].key() < refs[j].key()
	})
	for _, n := range nsList.Items {
		refs = append(refs, Ref{"v1", "Namespace", "", n.GetName()})
	}
	return refs, nil
}

// authReader reports whether an object of kind in ns may be the tap API's RoleBinding in
// kube-system (linkerd-<ns>-tap-auth-reader, to the extension-apiserver-authentication
// ConfigMap), the one object the chart puts in another namespace.
func authReader(kind, ns string) bool { return kind == "RoleBinding" && ns == "kube-system" }

// Rendered lists the objects of a rendered manifest stream.
func Rendered(manifests []byte) ([]Ref, error) {
	var refs []Ref
	for _, doc := range strings.Split(string(manifests), "\n---\n") {
		var o struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, fmt.Errorf("rendered manifest: %w", err)
		}
		if o.Kind == "" {
			continue
		}
		refs = append(refs, Ref{o.APIVersion, o.Kind, o.Metadata.Namespace, o.Metadata.Name})
	}
	return refs, nil
}

// Extraneous returns the installed objects the rendered manifests no longer hold: what
// `linkerd viz prune` removes after an upgrade or a change of values.
func Extraneous(installed, rendered []Ref) []Ref {
	want := map[string]bool{}
	for _, r := range rendered {
		want[r.key()] = true
	}
	var out []Ref
	for _, r := range installed {
		if !want[r.key()] {
			out = append(out, r)
		}
	}
	return out
}

// WriteRefs writes refs as a YAML stream of bare objects, for `kubectl delete -f -`.
func WriteRefs(w interface{ Write([]byte) (int, error) }, refs []Ref) error {
	var b strings.Builder
	for _, r := range refs {
		fmt.Fprintf(&b, "---\napiVersion: %s\nkind: %s\nmetadata:\n  name: %s\n", r.APIVersion, r.Kind, r.Name)
		if r.Namespace != "" {
			fmt.Fprintf(&b, "  namespace: %s\n", r.Namespace)
		}
	}
	_, err := w.Write([]byte(b.String()))
	return err
}
