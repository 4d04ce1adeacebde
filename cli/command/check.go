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
			switch output {
			case "table", "json", "short":
			default:
				return fmt.Errorf("--output must be table, json or short, not %q", output)
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
			deadline := time.Now().Add(wait)
			rep := check.Run(ctx, kube, dyn, o)
			for !rep.Success && time.Now().Before(deadline) {
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
				}
				if ctx.Err() != nil {
					break
				}
				rep = check.Run(ctx, kube, dyn, o)
			}
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
		},
	}
	f := c.Flags()
	f.BoolVar(&o.Pre, "pre", false, "only run pre-installation checks")
	f.BoolVar(&o.CNIEnabled, "linkerd-cni-enabled", false, "also check the linkerd-cni plugin (linkerd install-cni), which sets up pods' redirection instead of linkerd-init")
	f.BoolVar(&o.Proxy, "proxy", false, "also check the data plane (meshed pods of --namespace)")
	f.StringVarP(&o.DataPlaneNamespace, "namespace", "n", "", "namespace of the data plane for --proxy (default: all namespaces)")
	f.StringVarP(&output, "output", "o", "table", "output format: table, json or short")
	f.DurationVar(&wait, "wait", 5*time.Minute, "retry failing checks for up to this long")
	f.StringVar(&o.ExpectedVersion, "expected-version", "", "version the CLI, control plane and proxies should run (l5d has no version-check service)")
	f.BoolVar(&o.CRDs, "crds", false, "only check that the Linkerd CRDs are installed")
	return c
}
