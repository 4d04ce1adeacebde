package command

import (
	"fmt"
	"sort"
	"strings"

	"github.com/l5d-go/l5d/cli/check"
	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/deploy"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// uninstallKinds are the cluster-scoped kinds the control plane creates, found by label.
var uninstallKinds = []struct {
	gvr  schema.GroupVersionResource
	kind string
}{
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, "ClusterRole"},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, "ClusterRoleBinding"},
	{schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}, "MutatingWebhookConfiguration"},
	{schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}, "ValidatingWebhookConfiguration"},
}

func uninstallCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "uninstall",
		Short: "Output Kubernetes resources to uninstall the control plane (pipe to kubectl delete -f -)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := g.restConfig()
			if err != nil {
				return err
			}
			dyn, err := dynamic.NewForConfig(cfg)
			if err != nil {
				return err
			}
			ctx := contextOf(c)
			type ref struct{ apiVersion, kind, name string }
			var refs []ref
			sel := metav1.ListOptions{LabelSelector: "linkerd.io/control-plane-ns=" + g.namespace}
			for _, k := range uninstallKinds {
				l, err := dyn.Resource(k.gvr).List(ctx, sel)
				if err != nil {
					return fmt.Errorf("listing %s: %w", k.gvr.Resource, err)
				}
				for _, o := range l.Items {
					refs = append(refs, ref{k.gvr.GroupVersion().String(), k.kind, o.GetName()})
				}
			}
			crds, err := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).List(ctx, metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("listing CRDs: %w", err)
			}
			for _, o := range crds.Items {
				if strings.HasSuffix(o.GetName(), ".linkerd.io") {
					refs = append(refs, ref{"apiextensions.k8s.io/v1", "CustomResourceDefinition", o.GetName()})
				}
			}
			sort.SliceStable(refs, func(i, j int) bool {
				if refs[i].kind != refs[j].kind {
					return refs[i].kind < refs[j].kind
				}
				return refs[i].name < refs[j].name
			})
			if _, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Get(ctx, g.namespace, metav1.GetOptions{}); err == nil {
				refs = append(refs, ref{"v1", "Namespace", g.namespace})
			}
			if len(refs) == 0 {
				return fmt.Errorf("no Linkerd resources found for control-plane namespace %q", g.namespace)
			}
			for _, r := range refs {
				fmt.Fprintf(c.OutOrStdout(), "---\napiVersion: %s\nkind: %s\nmetadata:\n  name: %s\n", r.apiVersion, r.kind, r.name)
			}
			return nil
		},
	}
}

func upgradeCmd(g *globals) *cobra.Command {
	var (
		o      install.Options
		output string
	)
	c := &cobra.Command{
		Use:   "upgrade",
		Short: "Output Kubernetes configs to upgrade an existing control plane, keeping its identity and values",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Namespace = g.namespace
			o.Version = Version
			if o.CRDs {
				out, err := install.Render(o, nil)
				if err == nil {
					out, err = install.Format(out, output)
				}
				if err != nil {
					return err
				}
				_, err = c.OutOrStdout().Write(out)
				return err
			}
			out, err := renderUpgrade(c, g, o, "upgrade")
			if err != nil {
				return err
			}
			if out, err = install.Format(out, output); err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(out)
			return err
		},
	}
	f := c.Flags()
	f.BoolVar(&o.CRDs, "crds", false, "output the CustomResourceDefinitions only")
	f.BoolVar(&o.HA, "ha", false, "enable high-availability settings (values-ha.yaml)")
	f.BoolVar(&o.CNIEnabled, "linkerd-cni-enabled", false, "switch the injector to the linkerd-cni plugin (Helm's cniEnabled); without it the installed value is kept")
	f.StringArrayVar(&o.Sets, "set", nil, "Helm value override key=value (repeatable)")
	f.StringArrayVarP(&o.ValueFiles, "values", "f", nil, "Helm values file (repeatable; --set wins over it)")
	f.StringArrayVar(&o.SetStrings, "set-string", nil, "Helm value override key=value kept a string (repeatable)")
	f.StringArrayVar(&o.SetFiles, "set-file", nil, "Helm value override key=path, the value read from the file (repeatable)")
	f.StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	return c
}

// renderUpgrade renders the control plane an upgrade applies: the installed values
// (installedValues) with o's overrides, at the CLI's version.
func renderUpgrade(c *cobra.Command, g *globals, o install.Options, verb string) ([]byte, error) {
	base, err := installedValues(c, g, verb)
	if err != nil {
		return nil, err
	}
	vals, err := install.Overrides(base, o)
	if err != nil {
		return nil, err
	}
	return deploy.Render(deploy.ControlPlaneChart, deploy.Options{Namespace: g.namespace, Values: vals})
}

// installedValues returns the chart values of the installed control plane: linkerd-config's
// values with its trust anchors and the issuer kept (its Secret read back unless an external
// issuer manages it), linkerdVersion left for the CLI to set. verb names the command in the
// error when there is no control plane.
func installedValues(c *cobra.Command, g *globals, verb string) (map[string]any, error) {
	k, err := g.client()
	if err != nil {
		return nil, err
	}
	ctx := contextOf(c)
	cm, err := k.CoreV1().ConfigMaps(g.namespace).Get(ctx, "linkerd-config", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("no control plane to %s in namespace %s: %w", verb, g.namespace, err)
	}
	base, err := deploy.InstalledValues(cm.Data["values"])
	if err != nil {
		return nil, err
	}
	base["identityTrustAnchorsPEM"] = cm.Data["identityTrustAnchorsPEM"]
	delete(base, "linkerdVersion") // the CLI's version (install.Overrides) replaces it
	id, _ := base["identity"].(map[string]any)
	if id == nil {
		id = map[string]any{}
		base["identity"] = id
	}
	iss, _ := id["issuer"].(map[string]any)
	if iss == nil {
		iss = map[string]any{}
		id["issuer"] = iss
	}
	if iss["scheme"] != "kubernetes.io/tls" {
		s, err := k.CoreV1().Secrets(g.namespace).Get(ctx, "linkerd-identity-issuer", metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("reading the issuer to keep it: %w", err)
		}
		crt, key := check.IssuerPEM(s.Data)
		iss["tls"] = map[string]any{"crtPEM": string(crt), "keyPEM": string(key)}
	}
	return base, nil
}
