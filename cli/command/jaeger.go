package command

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/l5d-go/l5d/cli/check"
	"github.com/l5d-go/l5d/cli/jaegerext"
	"github.com/l5d-go/l5d/cli/svcrelay"
	"github.com/l5d-go/l5d/cli/vizext"
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
			var cluster map[string]any
			if !ignoreCluster {
				k, err := g.client()
				if err != nil {
					return fmt.Errorf("%w (use --ignore-cluster to render without the cluster)", err)
				}
				if cluster, err = vizext.ControlPlaneValues(contextOf(c), k, g.namespace); err != nil {
					return err
				}
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
	return &cobra.Command{
		Use:   "uninstall",
		Short: "Output Kubernetes resources to uninstall the linkerd-jaeger extension (pipe to kubectl delete -f -)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			dyn, err := g.dynamic()
			if err != nil {
				return err
			}
			refs, err := jaegerext.Installed(contextOf(c), dyn)
			if err != nil {
				return err
			}
			if len(refs) == 0 {
				return fmt.Errorf("no linkerd-jaeger resources found (nothing labelled %s)", jaegerext.Selector)
			}
			return vizext.WriteRefs(c.OutOrStdout(), refs)
		},
	}
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
		address, show, ns string
		port              int
		wait              time.Duration
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
			if show != "linkerd" && show != "url" {
				return fmt.Errorf("--show %q: want linkerd (open the browser) or url (print the address only)", show)
			}
			if port < 0 || port > 65535 {
				return fmt.Errorf("--port %d: want 0 (any free port) to 65535", port)
			}
			cfg, err := g.restConfig()
			if err != nil {
				return err
			}
			kube, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			ctx := c.Context()
			if err := waitJaegerReady(ctx, kube, ns, wait); err != nil {
				return err
			}
			relay, err := svcrelay.Handler(cfg, ns, jaegerService, jaegerPortName, nil)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("listening on %s:%d (choose another with --port): %w", address, port, err)
			}
			url := "http://" + ln.Addr().String() + jaegerBasePath
			out := c.OutOrStdout()
			fmt.Fprintf(out, "Jaeger extension dashboard available at:\n%s\n", url)
			if show == "linkerd" {
				if err := openBrowser(url); err != nil {
					fmt.Fprintf(c.ErrOrStderr(), "Failed to open the dashboard automatically (%v)\nVisit %s in your browser to view the dashboard\n", err, url)
				}
			}
			hs := &http.Server{Handler: relay, ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-ctx.Done()
				_ = hs.Close()
			}()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving %s: %w", url, err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&address, "address", "localhost", "address the local relay listens on")
	c.Flags().IntVarP(&port, "port", "p", 16686, "port the local relay listens on (0: any free port)")
	c.Flags().StringVar(&show, "show", "linkerd", "linkerd: print the address and open it in the browser; url: only print it")
	c.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long to wait for Jaeger to be available")
	c.Flags().StringVar(&ns, "jaeger-namespace", jaegerext.DefaultNamespace, "namespace of the jaeger extension")
	return c
}

// waitJaegerReady waits up to wait for Deployment jaeger in ns to have an available replica.
func waitJaegerReady(ctx context.Context, kube kubernetes.Interface, ns string, wait time.Duration) error {
	return waitAvailable(ctx, kube, ns, jaegerService, "jaeger", wait,
		fmt.Errorf("jaeger is not installed in namespace %s (deployment %s not found): run `linkerd jaeger install | kubectl apply -f -`", ns, jaegerService))
}
