// Package command holds the cobra commands of the linkerd CLI.
package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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
	g := &globals{stderr: errOut}
	root.PersistentFlags().BoolVar(&g.verbose, "verbose", false, "turn on debug logging: each Kubernetes API request, its status and duration, on stderr")
	root.PersistentFlags().StringVar(&g.apiAddr, "api-addr", "", "Kubernetes API server address (https://host:port), overriding the kubeconfig's")
	root.PersistentFlags().StringVarP(&g.namespace, "linkerd-namespace", "L", ns, "namespace of the control plane")
	root.PersistentFlags().StringVar(&g.kubeconfig, "kubeconfig", "", "path to the kubeconfig file")
	root.PersistentFlags().StringVar(&g.context, "context", "", "kubeconfig context")
	root.PersistentFlags().StringVar(&g.as, "as", "", "username to impersonate for Kubernetes operations")
	root.PersistentFlags().StringArrayVar(&g.asGroups, "as-group", nil, "group to impersonate for Kubernetes operations (repeatable)")
	root.AddCommand(installCmd(g), installCNICmd(), versionCmd(g), checkCmd(g), injectCmd(g), uninjectCmd(), uninstallCmd(g), upgradeCmd(g), pruneCmd(g), profileCmd(), diagnosticsCmd(g), identityCmd(g), vizCmd(g), jaegerCmd(g), authzCmd(g), multiclusterCmd(g))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	// cobra adds its completion command only when the tree runs: add it now so that it too
	// refuses unknown subcommands.
	root.InitDefaultCompletionCmd()
	failUnknownSubcommands(root)
	return root
}

// Main runs the command tree on args as the linkerd binary does and returns its exit status:
// 0 on success, else ExitCode of the error, which is written to errOut as Linkerd's CLI
// writes it ("Error: ..."), followed for a usage error (unknown command or flag) by
// "Run 'linkerd ... --help' for usage.".
func Main(ctx context.Context, args []string, out, errOut io.Writer) int {
	root := Root(out, errOut)
	if args == nil {
		args = []string{}
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(errOut, "Error:", err)
	var u *UsageError
	if errors.As(err, &u) && cmd != nil {
		fmt.Fprintf(errOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return ExitCode(err)
}

// UsageError is a command line that names no command or flag of the tree: an unknown
// subcommand, an unknown flag or a flag value that does not parse.
type UsageError struct{ Err error }

// Error is the underlying message, as cobra words it.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *UsageError) Unwrap() error { return e.Err }

// failUnknownSubcommands makes every command of the tree under c that only groups
// subcommands fail on an argument naming none of them with `unknown command "X" for
// "linkerd viz"` (a *UsageError), as Linkerd's CLI does. cobra checks this itself only for
// the root: a nested group without Run prints its help and succeeds, so `linkerd viz install
// | kubectl apply -f -` fed help text to kubectl. Such a group still prints its help when
// run without arguments.
func failUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		failUnknownSubcommands(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = unknownSubcommand
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default for the root
	}
	c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
}

// unknownSubcommand is the Args check of a command group: any argument is an unknown
// subcommand.
func unknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return &UsageError{Err: errors.New(msg)}
}

// globals are the persistent flags every command sees.
type globals struct {
	namespace, kubeconfig, context string
	// as and asGroups impersonate a user and groups (--as, --as-group).
	as       string
	asGroups []string
	// verbose logs every Kubernetes API request to stderr; apiAddr overrides the server.
	verbose bool
	apiAddr string
	stderr  io.Writer
}

func installCmd(g *globals) *cobra.Command {
	var (
		o      install.Options
		output string
	)
	c := &cobra.Command{
		Use:   "install",
		Short: "Output Kubernetes configs to install the l5d control plane (or its CRDs with --crds)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Namespace = g.namespace
			o.Version = Version
			if o.CRDs {
				fmt.Fprintln(c.ErrOrStderr(), "Rendering Linkerd CRDs...")
			}
			out, err := install.Render(o, c.ErrOrStderr())
			if err != nil {
				return err
			}
			if out, err = install.Format(out, output); err != nil {
				return err
			}
			if _, err := c.OutOrStdout().Write(out); err != nil {
				return err
			}
			if o.CRDs {
				fmt.Fprintln(c.ErrOrStderr(), "Next, run `linkerd install | kubectl apply -f -` to install the control plane.")
			}
			noteGatewayAPI(c, g)
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&o.CRDs, "crds", false, "output the CustomResourceDefinitions only")
	f.BoolVar(&o.HA, "ha", false, "enable high-availability settings (values-ha.yaml)")
	f.BoolVar(&o.CNIEnabled, "linkerd-cni-enabled", false, "the linkerd-cni plugin (linkerd install-cni) sets up pods' redirection: inject no linkerd-init, which needs NET_ADMIN and NET_RAW, but the network validator (Helm's cniEnabled)")
	f.StringArrayVar(&o.Sets, "set", nil, "Helm value override key=value (repeatable)")
	f.StringArrayVarP(&o.ValueFiles, "values", "f", nil, "Helm values file (repeatable; --set wins over it)")
	f.StringArrayVar(&o.SetStrings, "set-string", nil, "Helm value override key=value kept a string (repeatable)")
	f.StringArrayVar(&o.SetFiles, "set-file", nil, "Helm value override key=path, the value read from the file (repeatable)")
	f.StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	f.StringVar(&o.TrustAnchorsFile, "identity-trust-anchors-file", "", "PEM file of the trust anchors")
	f.StringVar(&o.IssuerCertFile, "identity-issuer-certificate-file", "", "PEM file of the issuer certificate")
	f.StringVar(&o.IssuerKeyFile, "identity-issuer-key-file", "", "PEM file of the issuer private key")
	return c
}

func versionCmd(g *globals) *cobra.Command {
	var (
		client, proxy bool
		dataNS        string
	)
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
			if proxy {
				return printProxyVersions(c, g, dataNS)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&client, "client", false, "print the client version only")
	c.Flags().BoolVar(&proxy, "proxy", false, "also print the versions of the data-plane proxies")
	c.Flags().StringVarP(&dataNS, "namespace", "n", "", "namespace of the proxies for --proxy (default: all namespaces)")
	return c
}

// ExitCode is the process exit status for an error returned by the command tree.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	return 1
}
