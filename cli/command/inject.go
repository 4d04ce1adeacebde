package command

import (
	"fmt"
	"io"
	"os"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/cli/manifest"
	"github.com/l5d-go/l5d/deploy"
	"github.com/l5d-go/l5d/injector/inject"
	"github.com/spf13/cobra"
	"helm.sh/helm/v3/pkg/chartutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// openInput opens FILE or "-" (stdin).
func openInput(c *cobra.Command, name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(c.InOrStdin()), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	return f, nil
}

func injectCmd(g *globals) *cobra.Command {
	var (
		o           manifest.InjectOptions
		anchorsFile string
	)
	c := &cobra.Command{
		Use:   "inject FILE|-",
		Short: "Add the Linkerd proxy to Kubernetes configs",
		Long: "inject annotates the pod templates of workloads with linkerd.io/inject: enabled so the\n" +
			"proxy-injector adds the proxy; with --manual it adds the proxy itself.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if o.Manual {
				v := inject.DefaultValues()
				v.ControlPlaneNamespace = g.namespace
				v.CreatedBy = "linkerd/cli " + Version
				anchors, chartValues, err := controlPlaneConfig(c, g, anchorsFile)
				if err != nil {
					return err
				}
				v.IdentityTrustAnchorsPEM = anchors
				if err := setImages(&v, chartValues); err != nil {
					return err
				}
				// A control plane installed with --linkerd-cni-enabled injects the validator.
				v.CNIEnabled, _ = chartValues["cniEnabled"].(bool)
				o.Values = &v
			}
			in, err := openInput(c, args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			return manifest.Transform(in, c.OutOrStdout(), c.ErrOrStderr(), manifest.Injector(o))
		},
	}
	f := c.Flags()
	f.BoolVar(&o.Manual, "manual", false, "include the proxy sidecar in the output instead of relying on the proxy-injector")
	f.BoolVar(&o.Ingress, "ingress", false, "inject in ingress mode (linkerd.io/inject: ingress)")
	f.StringVar(&o.SkipInboundPorts, "skip-inbound-ports", "", "inbound ports (and ranges) that bypass the proxy")
	f.StringVar(&o.SkipOutboundPorts, "skip-outbound-ports", "", "outbound ports (and ranges) that bypass the proxy")
	f.StringVar(&anchorsFile, "identity-trust-anchors-file", "", "with --manual: PEM trust anchors instead of reading them from the cluster")
	return c
}

// controlPlaneConfig returns the trust anchors and the chart values of the control plane
// that manual injection targets: with file, the anchors it holds and the chart's defaults at
// the CLI's version (what `linkerd install` installs); else both from the installed control
// plane's linkerd-config.
func controlPlaneConfig(c *cobra.Command, g *globals, file string) (string, map[string]any, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", nil, fmt.Errorf("--identity-trust-anchors-file: %w", err)
		}
		vals, err := install.Overrides(map[string]any{}, install.Options{Version: Version})
		if err != nil {
			return "", nil, err
		}
		return string(b), vals, nil
	}
	k, err := g.client()
	if err != nil {
		return "", nil, fmt.Errorf("--manual reads the trust anchors from the cluster (or give --identity-trust-anchors-file): %w", err)
	}
	cm, err := k.CoreV1().ConfigMaps(g.namespace).Get(contextOf(c), "linkerd-config", metav1.GetOptions{})
	if err != nil {
		return "", nil, fmt.Errorf("reading linkerd-config in namespace %s: %w", g.namespace, err)
	}
	a := cm.Data["identityTrustAnchorsPEM"]
	if a == "" {
		return "", nil, fmt.Errorf("linkerd-config in namespace %s has no identityTrustAnchorsPEM", g.namespace)
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(cm.Data["values"]), &vals); err != nil {
		return "", nil, fmt.Errorf("linkerd-config values: %w", err)
	}
	return a, vals, nil
}

// setImages sets the proxy and proxy-init images of v as the chart names them for its proxy
// injector: imageRegistry/<image.name>, tagged image.version or else linkerdVersion. vals
// are chart values over which the chart's defaults apply.
func setImages(v *inject.Values, vals map[string]any) error {
	defaults, err := deploy.ControlPlaneValues()
	if err != nil {
		return err
	}
	vals = chartutil.CoalesceTables(vals, defaults)
	str := func(path ...string) string {
		var cur any = vals
		for _, p := range path {
			m, _ := cur.(map[string]any)
			cur = m[p]
		}
		s, _ := cur.(string)
		return s
	}
	registry, version := str("imageRegistry"), str("linkerdVersion")
	image := func(component string) (string, string) {
		tag := str(component, "image", "version")
		if tag == "" {
			tag = version
		}
		return registry + "/" + str(component, "image", "name"), tag
	}
	v.ProxyImage, v.ProxyVersion = image("proxy")
	v.InitImage, v.InitVersion = image("proxyInit")
	return nil
}

func uninjectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "uninject FILE|-",
		Short: "Remove the Linkerd proxy from Kubernetes configs",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			in, err := openInput(c, args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			return manifest.Transform(in, c.OutOrStdout(), c.ErrOrStderr(), manifest.Uninject)
		},
	}
}
