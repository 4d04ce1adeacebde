package command

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/l5d-go/l5d/cli/check"
	"github.com/l5d-go/l5d/cli/jaegerext"
)

// jaegerService is the Jaeger Service in the extension's namespace, its UI port's name and
// the base path the chart serves the UI under.
const (
	jaegerService  = "jaeger"
	jaegerPortName = "ui"
	jaegerBasePath = "/jaeger"
)

func jaegerCmd(g *globals) *cobra.Command {
	j := &cobra.Command{
		Use:   "jaeger",
		Short: "jaeger manages the jaeger extension of Linkerd service mesh",
		Long: "jaeger installs, checks and removes the jaeger extension: a Jaeger receiving the\n" +
			"proxies' spans over OTLP, and the injector that configures the proxies of new meshed\n" +
			"pods to send them. Applications must propagate trace context (W3C traceparent or B3)\n" +
			"for their requests' hops to join one trace.",
	}
	j.AddCommand(jaegerInstallCmd(g), jaegerUninstallCmd(g), jaegerCheckCmd(g), jaegerDashboardCmd(g))
	return j
}

func jaegerInstallCmd(g *globals) *cobra.Command {
	var (
		o             jaegerext.Options
		ignoreCluster bool
	)
	c := &cobra.Command{
		Use:   "install",
		Short: "Output Kubernetes resources to install the linkerd-jaeger extension (pipe to kubectl apply -f -)",
		Long: "install renders the linkerd-jaeger chart: the linkerd-jaeger namespace (meshed), Jaeger\n" +
			"all-in-one (in-memory storage) receiving OTLP, and the jaeger-injector webhook. Restart\n" +
			"meshed workloads afterwards: their proxies are configured when their pods are created.\n\n" +
			"  linkerd jaeger install | kubectl apply -f -\n" +
			"  linkerd jaeger install --set jaeger.enabled=false --set webhook.collectorSvcAddr=otel.tracing:4317 --set webhook.collectorSvcAccount=otel",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.LinkerdNamespace = g.namespace
			o.Version = Version
			cluster, err := clusterValues(c, g, ignoreCluster)
			if err != nil {
				return err
			}
			out, err := jaegerext.Render(o, cluster)
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(out)
			return err
		},
	}
	vizValueFlags(c, &o.Values)
	c.Flags().BoolVar(&ignoreCluster, "ignore-cluster", false, "render without reading the installed control plane's settings")
	return c
}

func jaegerUninstallCmd(g *globals) *cobra.Command {
	return extensionUninstallCmd(g, "linkerd-jaeger", jaegerext.Selector)
}

func jaegerCheckCmd(g *globals) *cobra.Command {
	var f checkFlags
	c := &cobra.Command{
		Use:   "check",
		Short: "Check the linkerd-jaeger extension for potential problems",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return f.run(c, g, func(ctx context.Context, k checkClients) check.Report {
				return check.RunJaeger(ctx, k.kube, k.dyn, check.JaegerOptions{CLIVersion: Version})
			})
		},
	}
	f.register(c)
	return c
}

func jaegerDashboardCmd(g *globals) *cobra.Command {
	var (
		f  relayFlags
		ns string
	)
	c := &cobra.Command{
		Use:   "dashboard [--port PORT] [--show linkerd|url]",
		Short: "Open the Jaeger dashboard in a web browser",
		Long: "dashboard serves a local address that relays to the extension's Jaeger (Service jaeger,\n" +
			"port ui) through the Kubernetes API server's service proxy, prints it (Jaeger's UI and\n" +
			"query API are under /jaeger) and opens it in the default browser (--show url only\n" +
			"prints it). It runs until interrupted.\n\n" +
			"  linkerd jaeger dashboard\n" +
			"  linkerd jaeger dashboard --port 16686 --show url",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return f.serve(c, g, relayTarget{ns: ns, service: jaegerService, port: jaegerPortName, path: jaegerBasePath,
				title: "Jaeger extension dashboard",
				ready: func(ctx context.Context, kube kubernetes.Interface) error {
					return waitJaegerReady(ctx, kube, ns, f.wait)
				}})
		},
	}
	f.register(c, 16686, "Jaeger")
	c.Flags().StringVar(&ns, "jaeger-namespace", jaegerext.DefaultNamespace, "namespace of the jaeger extension")
	return c
}

// waitJaegerReady waits up to wait for Deployment jaeger in ns to have an available replica.
func waitJaegerReady(ctx context.Context, kube kubernetes.Interface, ns string, wait time.Duration) error {
	return waitAvailable(ctx, kube, ns, jaegerService, "jaeger", wait,
		fmt.Errorf("jaeger is not installed in namespace %s (deployment %s not found): run `linkerd jaeger install | kubectl apply -f -`", ns, jaegerService))
}
