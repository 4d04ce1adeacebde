package command

import (
	"fmt"
	"strings"
	"time"

	goldenmetrics "github.com/l5d-go/l5d/cli/golden"
	"github.com/l5d-go/l5d/cli/resource"
	"github.com/spf13/cobra"
)

func vizCmd(g *globals) *cobra.Command {
	v := &cobra.Command{
		Use:   "viz",
		Short: "Observe the mesh's traffic: golden metrics read directly from the proxies",
		Long: "viz reports what the proxies measure. Unlike Linkerd's viz extension, l5d's viz needs\n" +
			"no Prometheus and nothing installed: it reads each proxy's /metrics directly through\n" +
			"the Kubernetes API server (pods/proxy) and computes the figures itself.",
	}
	v.AddCommand(statCmd(g))
	v.AddCommand(vizInstallCmd(g), vizUninstallCmd(g), vizCheckCmd(g), vizListCmd(g), vizAllowScrapesCmd(g), vizPruneCmd(g))
	return v
}

func statCmd(g *globals) *cobra.Command {
	var (
		ns     string
		window time.Duration
	)
	c := &cobra.Command{
		Use:   "stat (deploy|svc|pod|ns)[/NAME] [NAME] [-n NAMESPACE]",
		Short: "Display the golden metrics (success rate, RPS, latency, TLS) of deployments, services, pods or namespaces",
		Long: "stat prints, per deployment, service, pod or namespace, the golden metrics of the inbound HTTP\n" +
			"traffic its meshed pods' proxies served during --time-window:\n\n" +
			"  NAME MESHED SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99 TLS\n\n" +
			"MESHED counts the pods with a proxy out of all; SUCCESS is the share of successful\n" +
			"responses; RPS responses per second; the latencies are percentiles of the response\n" +
			"latency histogram; TLS the share of requests that arrived over mesh TLS. \"-\" marks\n" +
			"figures the window had no traffic for.\n\n" +
			"No Prometheus is involved: the command scrapes every meshed pod's proxy /metrics\n" +
			"through the API server (pods/proxy) at the start and at the end of the window and\n" +
			"computes the figures from the difference, so it waits --time-window before printing.\n\n" +
			"  linkerd viz stat deploy -n emojivoto\n" +
			"  linkerd viz stat deploy/web -n emojivoto\n" +
			"  linkerd viz stat ns",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			ref, err := statTarget(args)
			if err != nil {
				return err
			}
			if window <= 0 {
				return fmt.Errorf("--time-window %v must be positive", window)
			}
			client, err := g.client()
			if err != nil {
				return err
			}
			s := &goldenmetrics.Scraper{Client: client, Namespace: ns, Kind: ref.Kind, Name: ref.Name}
			if ref.Kind == resource.Namespace {
				s.Namespace = ""
			}
			ctx := contextOf(c)
			scrape := func() (goldenmetrics.Snapshot, error) {
				snap, err := s.Scrape(ctx)
				if err != nil {
					return snap, err
				}
				for _, r := range snap.Resources {
					for _, e := range r.Errors {
						fmt.Fprintln(c.ErrOrStderr(), "warning:", e)
					}
				}
				return snap, nil
			}
			before, err := scrape()
			if err != nil {
				return err
			}
			if len(before.Resources) == 0 {
				fmt.Fprintf(c.OutOrStdout(), "No %ss found in namespace %s.\n", ref.Kind, ns)
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(window):
			}
			after, err := scrape()
			if err != nil {
				return err
			}
			return goldenmetrics.WriteTable(c.OutOrStdout(), goldenmetrics.Stats(before, after))
		},
	}
	c.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the resources")
	c.Flags().DurationVarP(&window, "time-window", "t", 10*time.Second, "how long to measure the traffic for")
	return c
}

// statTarget parses stat's arguments: "deploy", "deploy/web" or "deploy web".
func statTarget(args []string) (resource.Ref, error) {
	ref := resource.Ref{}
	kind, name, hasName := strings.Cut(args[0], "/")
	k, err := resource.ParseKind(kind)
	if err != nil {
		return ref, err
	}
	if k != resource.Deployment && k != resource.Service && k != resource.Pod && k != resource.Namespace {
		return ref, fmt.Errorf("stat covers deploy, svc, pod and ns, not %s", k)
	}
	if len(args) == 2 {
		if hasName {
			return ref, fmt.Errorf("name given twice: %q and %q", args[0], args[1])
		}
		name, hasName = args[1], true
	}
	if hasName && name == "" {
		return ref, fmt.Errorf("resource %q: empty name", args[0])
	}
	return resource.Ref{Kind: k, Name: name}, nil
}
