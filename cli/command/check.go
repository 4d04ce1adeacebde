package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/l5d-go/l5d/cli/check"
	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// errChecksFailed is returned when a check fails; the output already says which.
var errChecksFailed = errors.New("linkerd check found problems")

func checkCmd(g *globals) *cobra.Command {
	var (
		o check.Options
		f checkFlags
	)
	c := &cobra.Command{
		Use:   "check",
		Short: "Check the Linkerd installation for potential problems",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Namespace = g.namespace
			o.CLIVersion = Version
			return f.run(c, g, func(ctx context.Context, k checkClients) check.Report {
				return check.Run(ctx, k.kube, k.dyn, o)
			})
		},
	}
	fs := c.Flags()
	fs.BoolVar(&o.Pre, "pre", false, "only run pre-installation checks")
	fs.BoolVar(&o.CNIEnabled, "linkerd-cni-enabled", false, "also check the linkerd-cni plugin (linkerd install-cni), which sets up pods' redirection instead of linkerd-init")
	fs.BoolVar(&o.Proxy, "proxy", false, "also check the data plane (meshed pods of --namespace)")
	fs.StringVarP(&o.DataPlaneNamespace, "namespace", "n", "", "namespace of the data plane for --proxy (default: all namespaces)")
	fs.StringVar(&o.ExpectedVersion, "expected-version", "", "version the CLI, control plane and proxies should run (l5d has no version-check service)")
	fs.BoolVar(&o.CRDs, "crds", false, "only check that the Linkerd CRDs are installed")
	f.register(c)
	return c
}

// checkFlags are the flags every check command takes besides its own.
type checkFlags struct {
	output string
	wait   time.Duration
}

func (f *checkFlags) register(c *cobra.Command) {
	c.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table, json or short")
	c.Flags().DurationVar(&f.wait, "wait", 5*time.Minute, "retry failing checks for up to this long")
}

// checkClients reach the cluster for the checks: nil clients (and cfgErr) when the
// kubeconfig cannot be loaded, which the first check reports.
type checkClients struct {
	cfg    *rest.Config
	cfgErr error
	kube   kubernetes.Interface
	dyn    dynamic.Interface
}

// run validates the flags, runs checks until they pass or --wait is over and prints the
// last report; a failed check is errChecksFailed.
func (f *checkFlags) run(c *cobra.Command, g *globals, checks func(context.Context, checkClients) check.Report) error {
	switch f.output {
	case "table", "json", "short":
	default:
		return fmt.Errorf("--output must be table, json or short, not %q", f.output)
	}
	var k checkClients
	if k.cfg, k.cfgErr = g.restConfig(); k.cfgErr == nil {
		k.kube, _ = kubernetes.NewForConfig(k.cfg)
		k.dyn, _ = dynamic.NewForConfig(k.cfg)
	}
	ctx, cancel := context.WithTimeout(contextOf(c), f.wait+30*time.Second)
	defer cancel()
	rep := retryChecks(ctx, f.wait, func() check.Report { return checks(ctx, k) })
	return writeReport(c, f.output, rep)
}

// retryChecks runs the checks until they pass or wait is over (or ctx ends), every 2s, and
// returns the last report.
func retryChecks(ctx context.Context, wait time.Duration, run func() check.Report) check.Report {
	deadline := time.Now().Add(wait)
	rep := run()
	for !rep.Success && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return rep
		case <-time.After(2 * time.Second):
		}
		rep = run()
	}
	return rep
}

// writeReport prints rep as a table, JSON or one line per category (short) and returns
// errChecksFailed when a check failed.
func writeReport(c *cobra.Command, output string, rep check.Report) error {
	switch output {
	case "json":
		if err := check.WriteJSON(c.OutOrStdout(), rep); err != nil {
			return err
		}
	case "short":
		check.WriteShort(c.OutOrStdout(), rep)
	default:
		check.WriteTable(c.OutOrStdout(), rep)
	}
	if !rep.Success {
		return errChecksFailed
	}
	return nil
}

// noteGatewayAPI tells `linkerd install` users when the cluster the kubeconfig names lacks
// the Gateway API CRDs, as Linkerd's install does. Without a reachable cluster (rendering
// offline) it says nothing: install needs no cluster.
func noteGatewayAPI(c *cobra.Command, g *globals) {
	dyn, err := g.dynamic()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(contextOf(c), 5*time.Second)
	defer cancel()
	if missing, err := check.MissingGatewayAPICRDs(ctx, dyn); err == nil && len(missing) > 0 {
		fmt.Fprintf(c.ErrOrStderr(), "Note: %v\n", check.GatewayAPIError(missing))
	}
}
