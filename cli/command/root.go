// Package command holds the cobra commands of the linkerd CLI.
package command

import (
	"fmt"
	"io"
	"os"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/spf13/cobra"
)

// Version is the CLI's version, set at build time with -ldflags -X.
var Version = "dev"

// Root returns the linkerd command tree writing to out and errOut.
func Root(out, errOut io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "linkerd",
		Short:         "linkerd manages the l5d service mesh",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	ns := os.Getenv("LINKERD_NAMESPACE")
	if ns == "" {
		ns = "linkerd"
	}
	g := &globals{}
	root.PersistentFlags().StringVarP(&g.namespace, "linkerd-namespace", "L", ns, "namespace of the control plane")
	root.PersistentFlags().StringVar(&g.kubeconfig, "kubeconfig", "", "path to the kubeconfig file")
	root.PersistentFlags().StringVar(&g.context, "context", "", "kubeconfig context")
	root.PersistentFlags().StringVar(&g.as, "as", "", "username to impersonate for Kubernetes operations")
	root.PersistentFlags().StringArrayVar(&g.asGroups, "as-group", nil, "group to impersonate for Kubernetes operations (repeatable)")
	root.AddCommand(installCmd(g), versionCmd(g), checkCmd(g), injectCmd(g), uninjectCmd(), uninstallCmd(g), upgradeCmd(g), profileCmd(), diagnosticsCmd(g), identityCmd(g), vizCmd(g), authzCmd(g))
	return root
}

// globals are the persistent flags every command sees.
type globals struct {
	namespace, kubeconfig, context string
	// as and asGroups impersonate a user and groups (--as, --as-group).
	as       string
	asGroups []string
}

func installCmd(g *globals) *cobra.Command {
	var o install.Options
	c := &cobra.Command{
		Use:   "install",
		Short: "Output Kubernetes configs to install the l5d control plane (or its CRDs with --crds)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Namespace = g.namespace
			if o.CRDs {
				fmt.Fprintln(c.ErrOrStderr(), "Rendering Linkerd CRDs...")
			}
			out, err := install.Render(o, c.ErrOrStderr())
			if err != nil {
				return err
			}
			if _, err := c.OutOrStdout().Write(out); err != nil {
				return err
			}
			if o.CRDs {
				fmt.Fprintln(c.ErrOrStderr(), "Next, run `linkerd install | kubectl apply -f -` to install the control plane.")
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&o.CRDs, "crds", false, "output the CustomResourceDefinitions only")
	f.BoolVar(&o.HA, "ha", false, "enable high-availability settings (values-ha.yaml)")
	f.StringArrayVar(&o.Sets, "set", nil, "Helm value override key=value (repeatable)")
	f.StringVar(&o.TrustAnchorsFile, "identity-trust-anchors-file", "", "PEM file of the trust anchors")
	f.StringVar(&o.IssuerCertFile, "identity-issuer-certificate-file", "", "PEM file of the issuer certificate")
	f.StringVar(&o.IssuerKeyFile, "identity-issuer-key-file", "", "PEM file of the issuer private key")
	return c
}

func versionCmd(g *globals) *cobra.Command {
	client := false
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the client and server version information",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintf(c.OutOrStdout(), "Client version: %s\n", Version)
			if client {
				return nil
			}
			fmt.Fprintf(c.OutOrStdout(), "Server version: %s\n", serverVersion(c, g))
			return nil
		},
	}
	c.Flags().BoolVar(&client, "client", false, "print the client version only")
	return c
}

// ExitCode is the process exit status for an error returned by the command tree.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	return 1
}
