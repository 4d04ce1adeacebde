package command

import (
	"fmt"
	"sort"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// pruneKinds are the kinds the control plane's charts create, searched by the
// linkerd.io/control-plane-ns label; namespaced ones in the control-plane namespace.
var pruneKinds = []struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
}{
	{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "ConfigMap", true},
	{schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, "Secret", true},
	{schema.GroupVersionResource{Version: "v1", Resource: "services"}, "Service", true},
	{schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, "ServiceAccount", true},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "Deployment", true},
	{schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, "CronJob", true},
	{schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}, "PodDisruptionBudget", true},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, "Role", true},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}, "RoleBinding", true},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, "ClusterRole", false},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, "ClusterRoleBinding", false},
	{schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}, "MutatingWebhookConfiguration", false},
	{schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}, "ValidatingWebhookConfiguration", false},
}

// objRef names one object.
type objRef struct{ apiVersion, kind, namespace, name string }

// renderedRefs lists the objects of a rendered YAML stream by kind, namespace and name.
func renderedRefs(rendered []byte) (map[objRef]bool, error) {
	refs := map[objRef]bool{}
	err := install.EachDocument(rendered, func(doc []byte) error {
		var m struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return fmt.Errorf("reading the rendered control plane: %w", err)
		}
		if m.Kind != "" {
			refs[objRef{kind: m.Kind, namespace: m.Metadata.Namespace, name: m.Metadata.Name}] = true
		}
		return nil
	})
	return refs, err
}

func pruneCmd(g *globals) *cobra.Command {
	var o install.Options
	c := &cobra.Command{
		Use:   "prune",
		Short: "Output extraneous Kubernetes resources of the control plane (pipe to kubectl delete -f -)",
		Long: "prune lists the objects labelled with the control plane's namespace that the CLI's\n" +
			"version of the control plane, rendered with the installed values, no longer has:\n" +
			"what an upgrade leaves behind. Pipe it to kubectl delete -f -.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Version = Version
			out, err := renderUpgrade(c, g, o, "prune")
			if err != nil {
				return err
			}
			want, err := renderedRefs(out)
			if err != nil {
				return err
			}
			cfg, err := g.restConfig()
			if err != nil {
				return err
			}
			dyn, err := dynamic.NewForConfig(cfg)
			if err != nil {
				return err
			}
			sel := metav1.ListOptions{LabelSelector: "linkerd.io/control-plane-ns=" + g.namespace}
			var extra []objRef
			for _, k := range pruneKinds {
				ri := dyn.Resource(k.gvr)
				var lister dynamic.ResourceInterface = ri
				if k.namespaced {
					lister = ri.Namespace(g.namespace)
				}
				l, err := lister.List(contextOf(c), sel)
				if err != nil {
					return fmt.Errorf("listing %s: %w", k.gvr.Resource, err)
				}
				for _, obj := range l.Items {
					ref := objRef{kind: k.kind, namespace: obj.GetNamespace(), name: obj.GetName()}
					if !want[ref] {
						ref.apiVersion = k.gvr.GroupVersion().String()
						extra = append(extra, ref)
					}
				}
			}
			sort.Slice(extra, func(i, j int) bool {
				a, b := extra[i], extra[j]
				if a.kind != b.kind {
					return a.kind < b.kind
				}
				return a.name < b.name
			})
			for _, r := range extra {
				fmt.Fprintf(c.OutOrStdout(), "---\napiVersion: %s\nkind: %s\nmetadata:\n  name: %s\n", r.apiVersion, r.kind, r.name)
				if r.namespace != "" {
					fmt.Fprintf(c.OutOrStdout(), "  namespace: %s\n", r.namespace)
				}
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&o.HA, "ha", false, "compare with the high-availability rendering (values-ha.yaml)")
	f.StringArrayVar(&o.Sets, "set", nil, "Helm value override key=value, as given to upgrade (repeatable)")
	f.StringArrayVarP(&o.ValueFiles, "values", "f", nil, "Helm values file, as given to upgrade (repeatable)")
	return c
}
