package command

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/l5d-go/l5d/cli/check"
	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/cli/vizext"
	"github.com/l5d-go/l5d/cli/vizprom"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// vizValueFlags adds Helm's value flags (-f/--values, --set, --set-string) to c.
func vizValueFlags(c *cobra.Command, v *install.ValueOptions) {
	f := c.Flags()
	f.StringArrayVarP(&v.Files, "values", "f", nil, "YAML file of chart values (repeatable)")
	f.StringArrayVar(&v.Sets, "set", nil, "Helm value override key=value (repeatable)")
	f.StringArrayVar(&v.StringSets, "set-string", nil, "Helm value override key=value, the value kept a string (repeatable)")
}

// vizRender renders the extension as `linkerd viz install` does: with the installed control
// plane's settings unless ignoreCluster.
func vizRender(c *cobra.Command, g *globals, o vizext.Options, ignoreCluster bool) ([]byte, error) {
	o.LinkerdNamespace = g.namespace
	o.Version = Version
	cluster, err := clusterValues(c, g, ignoreCluster)
	if err != nil {
		return nil, err
	}
	return vizext.Render(o, cluster)
}

// clusterValues returns the values the installed control plane was installed with, which
// an extension's install follows, or nil with ignoreCluster.
func clusterValues(c *cobra.Command, g *globals, ignoreCluster bool) (map[string]any, error) {
	if ignoreCluster {
		return nil, nil
	}
	k, err := g.client()
	if err != nil {
		return nil, fmt.Errorf("%w (use --ignore-cluster to render without the cluster)", err)
	}
	return vizext.ControlPlaneValues(contextOf(c), k, g.namespace)
}

func vizInstallCmd(g *globals) *cobra.Command {
	var (
		o             vizext.Options
		ignoreCluster bool
	)
	c := &cobra.Command{
		Use:   "install",
		Short: "Output Kubernetes resources to install the linkerd-viz extension (pipe to kubectl apply -f -)",
		Long: "install renders the linkerd-viz chart: the linkerd-viz namespace (meshed), a Prometheus\n" +
			"scraping every proxy and the control plane, and the metrics-api the viz commands query.\n\n" +
			"  linkerd viz install | kubectl apply -f -\n" +
			"  linkerd viz install --set prometheus.enabled=false --set prometheusUrl=http://prom.monitoring:9090",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			out, err := vizRender(c, g, o, ignoreCluster)
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

func vizUninstallCmd(g *globals) *cobra.Command {
	return extensionUninstallCmd(g, "linkerd-viz", vizext.Selector)
}

// extensionUninstallCmd is the uninstall command of the extension named name, whose
// objects carry selector: it prints them for kubectl delete -f -.
func extensionUninstallCmd(g *globals, name, selector string) *cobra.Command {
	return &cobra.Command{
		Use:   "uninstall",
		Short: "Output Kubernetes resources to uninstall the " + name + " extension (pipe to kubectl delete -f -)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			dyn, err := g.dynamic()
			if err != nil {
				return err
			}
			refs, err := vizext.InstalledBy(contextOf(c), dyn, selector)
			if err != nil {
				return err
			}
			if len(refs) == 0 {
				return fmt.Errorf("no %s resources found (nothing labelled %s)", name, selector)
			}
			return vizext.WriteRefs(c.OutOrStdout(), refs)
		},
	}
}

func vizPruneCmd(g *globals) *cobra.Command {
	var (
		o             vizext.Options
		ignoreCluster bool
	)
	c := &cobra.Command{
		Use:   "prune",
		Short: "Output extraneous Kubernetes resources of the linkerd-viz extension (pipe to kubectl delete -f -)",
		Long: "prune prints the extension's objects in the cluster that `linkerd viz install` with the\n" +
			"same values would no longer render, e.g. after an upgrade or prometheus.enabled=false:\n\n" +
			"  linkerd viz install | kubectl apply -f - && linkerd viz prune | kubectl delete -f -",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			out, err := vizRender(c, g, o, ignoreCluster)
			if err != nil {
				return err
			}
			rendered, err := vizext.Rendered(out)
			if err != nil {
				return err
			}
			dyn, err := g.dynamic()
			if err != nil {
				return err
			}
			installed, err := vizext.Installed(contextOf(c), dyn)
			if err != nil {
				return err
			}
			return vizext.WriteRefs(c.OutOrStdout(), vizext.Extraneous(installed, rendered))
		},
	}
	vizValueFlags(c, &o.Values)
	c.Flags().BoolVar(&ignoreCluster, "ignore-cluster", false, "render without reading the installed control plane's settings")
	return c
}

func vizAllowScrapesCmd(g *globals) *cobra.Command {
	o := vizext.ScrapeOptions{VizNamespace: vizext.DefaultNamespace}
	c := &cobra.Command{
		Use:   "allow-scrapes --namespace NAMESPACE",
		Short: "Output authorization policy that lets Prometheus scrape the proxies of a namespace",
		Long: "allow-scrapes prints a Server for the proxies' admin port (linkerd-admin) of every pod in\n" +
			"--namespace and AuthorizationPolicies admitting Prometheus' scrapes of /metrics and the\n" +
			"kubelet's probes, for namespaces whose default inbound policy denies them:\n\n" +
			"  linkerd viz allow-scrapes --namespace emojivoto | kubectl apply -f -",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.CreatedBy = "linkerd/cli " + Version
			return vizext.WriteAllowScrapes(c.OutOrStdout(), o)
		},
	}
	c.Flags().StringVarP(&o.Namespace, "namespace", "n", "", "namespace of the meshed pods (required)")
	c.Flags().StringVar(&o.VizNamespace, "viz-namespace", o.VizNamespace, "namespace of the viz extension")
	return c
}

func vizCheckCmd(g *globals) *cobra.Command {
	var (
		o check.VizOptions
		f checkFlags
	)
	c := &cobra.Command{
		Use:   "check",
		Short: "Check the linkerd-viz extension for potential problems",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Namespace = g.namespace
			o.CLIVersion = Version
			return f.run(c, g, func(ctx context.Context, k checkClients) check.Report {
				o.Prometheus = func(ns string) (check.Prometheus, error) {
					if k.cfgErr != nil {
						return nil, k.cfgErr
					}
					return vizprom.New(k.cfg, ns)
				}
				return check.RunViz(ctx, k.kube, k.dyn, o)
			})
		},
	}
	c.Flags().BoolVar(&o.Proxy, "proxy", false, "also check the data plane (meshed pods of --namespace) as Prometheus sees it")
	c.Flags().StringVarP(&o.DataPlaneNamespace, "namespace", "n", "", "namespace of the data plane for --proxy (default: all namespaces)")
	f.register(c)
	return c
}

func vizListCmd(g *globals) *cobra.Command {
	var (
		ns  string
		all bool
	)
	c := &cobra.Command{
		Use:   "list [-n NAMESPACE | -A]",
		Short: "List the meshed pods and whether Prometheus scrapes their proxies",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if all {
				ns = ""
			}
			cfg, err := g.restConfig()
			if err != nil {
				return err
			}
			kube, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			ctx := contextOf(c)
			vizNS, err := vizNamespace(ctx, kube)
			if err != nil {
				return err
			}
			pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			prom, err := vizprom.New(cfg, vizNS)
			if err != nil {
				return err
			}
			up, err := prom.ScrapedProxies(ctx, ns)
			if err != nil {
				return err
			}
			var scraped, missing []string
			for _, p := range pods.Items {
				if !check.Meshed(&p) || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
					continue
				}
				k := p.Namespace + "/" + p.Name
				if up[k] {
					scraped = append(scraped, k)
				} else {
					missing = append(missing, k)
				}
			}
			w := c.OutOrStdout()
			if len(scraped)+len(missing) == 0 {
				fmt.Fprintln(w, "No meshed pods found.")
				return nil
			}
			sort.Strings(scraped)
			sort.Strings(missing)
			if len(scraped) > 0 {
				fmt.Fprintf(w, "Pods whose proxy metrics Prometheus scrapes:\n\t* %s\n", strings.Join(scraped, "\n\t* "))
			}
			if len(missing) > 0 {
				fmt.Fprintf(w, "Pods Prometheus does not scrape (not yet discovered, not ready, or refused: see `linkerd viz check --proxy`):\n\t* %s\n", strings.Join(missing, "\n\t* "))
			}
			return nil
		},
	}
	c.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the pods")
	c.Flags().BoolVarP(&all, "all-namespaces", "A", false, "pods of every namespace")
	return c
}

// vizNamespace finds the viz extension's namespace by its linkerd.io/extension=viz label.
func vizNamespace(ctx context.Context, kube kubernetes.Interface) (string, error) {
	l, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: vizext.Selector})
	if err != nil {
		return "", fmt.Errorf("looking for the viz extension: %w", err)
	}
	if len(l.Items) == 0 {
		return "", fmt.Errorf("the viz extension is not installed (no namespace labelled %s): run `linkerd viz install | kubectl apply -f -`", vizext.Selector)
	}
	return l.Items[0].Name, nil
}
