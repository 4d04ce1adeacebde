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
)

// errChecksFailed is returned when a check fails; the output already says which.
var errChecksFailed = errors.New("linkerd check found problems")

func checkCmd(g *globals) *cobra.Command {
	var (
		o      check.Options
		output string
		wait   time.Duration
	)
	c := &cobra.Command{
		Use:   "check",
		Short: "Check the Linkerd installation for potential problems",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output must be table or json, not %q", output)
			}
			o.Namespace = g.namespace
			o.CLIVersion = Version
			var kube kubernetes.Interface
			var dyn dynamic.Interface
			if cfg, err := g.restConfig(); err == nil {
				kube, _ = kubernetes.NewForConfig(cfg)
				dyn, _ = dynamic.NewForConfig(cfg)
			}
			ctx, cancel := context.WithTimeout(contextOf(c), wait+30*time.Second)
			defer cancel()
			rep := retryChecks(ctx, wait, func() check.Report { return check.Run(ctx, kube, dyn, o) })
			return writeReport(c, output, rep)
		},
	}
	f := c.Flags()
	f.BoolVar(&o.Pre, "pre", false, "only run pre-installation checks")
	f.BoolVar(&o.Proxy, "proxy", false, "also check the data plane (meshed pods of --namespace)")
	f.StringVarP(&o.DataPlaneNamespace, "namespace", "n", "", "namespace of the data plane for --proxy (default: all namespaces)")
	f.StringVarP(&output, "output", "o", "table", "output format: table or json")
	f.DurationVar(&wait, "wait", 0, "retry failing checks for up to this long")
	return c
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

// writeReport prints rep as a table or JSON and returns errChecksFailed when a check failed.
func writeReport(c *cobra.Command, output string, rep check.Report) error {
	if output == "json" {
		if err := check.WriteJSON(c.OutOrStdout(), rep); err != nil {
			return err
		}
	} else {
		check.WriteTable(c.OutOrStdout(), rep)
	}
	if !rep.Success {
		return errChecksFailed
	}
	return nil
}
