package command

import (
	"context"
	"time"

	"github.com/l5d-go/l5d/cli/diagnostics"
	"github.com/spf13/cobra"
)

func diagnosticsCmd() *cobra.Command {
	d := &cobra.Command{
		Use:   "diagnostics",
		Short: "Commands used to diagnose Linkerd components",
	}
	var addr string
	var timeout time.Duration
	ep := &cobra.Command{
		Use:   "endpoints AUTHORITY",
		Short: "Introspect Linkerd's service discovery state (e.g. web-svc.emojivoto.svc.cluster.local:80)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(contextOf(c), timeout)
			defer cancel()
			eps, err := diagnostics.Endpoints(ctx, addr, args[0])
			if err != nil {
				return err
			}
			diagnostics.WriteEndpoints(c.OutOrStdout(), args[0], eps)
			return nil
		},
	}
	ep.Flags().StringVar(&addr, "destination-addr", "localhost:8086", "host:port of the Destination API (e.g. through kubectl port-forward -n linkerd deploy/linkerd-destination 8086)")
	ep.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the answer")
	d.AddCommand(ep)
	return d
}
