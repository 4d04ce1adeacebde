package command

import (
	"fmt"
	"strings"
	"time"

	goldenmetrics "github.com/l5d-go/l5d/cli/goldenmetrics"
	"github.com/l5d-go/l5d/cli/resource"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/l5d-go/l5d/cli/viztable"
	"github.com/l5d-go/l5d/pkg/vizapi"
)

func vizCmd(g *globals) *cobra.Command {
	v := &cobra.Command{
		Use:   "viz",
		Short: "Observe the mesh's traffic: golden metrics, edges and routes from the viz extension",
		Long: "viz reports what the proxies measure, from the viz extension's Prometheus through its\n" +
			"metrics-api (reached through the Kubernetes API server's service proxy). Without the\n" +
			"extension, stat falls back to reading each proxy's /metrics directly.",
	}
	v.AddCommand(statCmd(g), edgesCmd(g), routesCmd(g), routeStatsCmd(g, false), routeStatsCmd(g, true), tapCmd(g), topCmd(g), vizProfileCmd(g))
	v.AddCommand(vizInstallCmd(g), vizUninstallCmd(g), vizCheckCmd(g), vizListCmd(g), vizAllowScrapesCmd(g), vizPruneCmd(g), vizDashboardCmd(g))
	return v
}

func statCmd(g *globals) *cobra.Command {
	var (
		f                      vizFlags
		from, fromNS, to, toNS string
	)
	c := &cobra.Command{
		Use:   "stat (all|deploy|sts|ds|job|pod|svc|ns|au|rc|cronjob)[/NAME] [NAME] [-n NAMESPACE]",
		Short: "Display the golden metrics (success rate, RPS, latency, connections) of resources",
		Long: "stat prints, per resource, the golden metrics of the HTTP traffic its meshed pods'\n" +
			"proxies served during --time-window (default 1m):\n\n" +
			"  NAME MESHED SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99 TCP_CONN\n\n" +
			"MESHED counts the running pods with a proxy out of all; SUCCESS is the share of\n" +
			"successful responses; RPS responses per second; the latencies percentiles of the\n" +
			"response latency; TCP_CONN the open connections (-o wide adds READ_BYTES/SEC and\n" +
			"WRITE_BYTES/SEC). \"-\" marks resources without traffic in the window. --to narrows to\n" +
			"the resources' requests to another, --from to another's requests to them; services\n" +
			"and authorities are measured from their clients' side.\n\n" +
			"The figures come from the viz extension's metrics-api. When the extension is not\n" +
			"installed, stat (deploy, svc, pod, ns only; no --from/--to) scrapes every meshed pod's\n" +
			"proxy /metrics through the API server (pods/proxy) at the start and at the end of the\n" +
			"window (10s unless -t is given) and prints NAME MESHED SUCCESS RPS LATENCY_P50\n" +
			"LATENCY_P95 LATENCY_P99 TLS from the difference.\n\n" +
			"  linkerd viz stat deploy -n emojivoto\n" +
			"  linkerd viz stat deploy/web -n emojivoto --to svc/emoji-svc\n" +
			"  linkerd viz stat ns\n" +
			"  linkerd viz stat all -A -o json",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			if err := viztable.CheckFormat(f.output); err != nil {
				return err
			}
			v, err := g.vizAPI(f.vizNS)
			if err != nil {
				return err
			}
			ctx := contextOf(c)
			installed, err := v.installed(ctx)
			if err != nil {
				return err
			}
			if installed {
				if _, err := vizapi.ParseWindow(f.window); err != nil {
					return fmt.Errorf("--time-window: %w", err)
				}
				return statViaAPI(c, v, &f, args, from, fromNS, to, toNS)
			}
			if from != "" || to != "" || f.output != viztable.Table || f.allNamespaces || f.selector != "" {
				return fmt.Errorf("--from, --to, --all-namespaces, --selector and --output need the viz extension, which is not installed in namespace %s: run `linkerd viz install | kubectl apply -f -`", f.vizNS)
			}
			window := 10 * time.Second
			if c.Flags().Changed("time-window") {
				if window, err = time.ParseDuration(f.window); err != nil || window <= 0 {
					return fmt.Errorf("--time-window %q must be a positive duration", f.window)
				}
			}
			return statByScraping(c, v.kube, f.namespace, window, args)
		},
	}
	f.register(c, vizapi.DefaultTimeWindow)
	c.Flags().StringVar(&from, "from", "", "only the requests from this resource (e.g. deploy/web)")
	c.Flags().StringVar(&fromNS, "from-namespace", "", "namespace of --from (default: --namespace)")
	c.Flags().StringVar(&to, "to", "", "only the requests to this resource (e.g. svc/emoji-svc)")
	c.Flags().StringVar(&toNS, "to-namespace", "", "namespace of --to (default: --namespace)")
	return c
}

// statByScraping is stat without the viz extension: it scrapes the proxies window apart.
func statByScraping(c *cobra.Command, client kubernetes.Interface, ns string, window time.Duration, args []string) error {
	ref, err := statTarget(args)
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
		return ref, fmt.Errorf("without the viz extension stat covers deploy, svc, pod and ns, not %s", k)
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
