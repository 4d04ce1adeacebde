package command

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/l5d-go/l5d/cli/check"
	"github.com/l5d-go/l5d/cli/mcext"
	"github.com/l5d-go/l5d/cli/vizext"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"github.com/spf13/cobra"
)

func multiclusterCmd(g *globals) *cobra.Command {
	m := &cobra.Command{
		Use:   "multicluster",
		Short: "Manages the multicluster setup for Linkerd",
		Long: "multicluster links clusters that share a trust anchor: Services exported in one\n" +
			"(labelled mirror.linkerd.io/exported=true, or =remote-discovery for pod-to-pod) appear\n" +
			"in the other as <service>-<cluster>, reached over mTLS through the target's gateway\n" +
			"or directly.\n\n" +
			"  linkerd --context=east multicluster install | kubectl --context=east apply -f -\n" +
			"  linkerd --context=east multicluster link --cluster-name east | kubectl --context=west apply -f -\n" +
			"  linkerd --context=west multicluster gateways",
	}
	var ns string
	m.PersistentFlags().StringVar(&ns, "multicluster-namespace", mc.Namespace, "namespace of the multicluster extension")
	m.AddCommand(mcInstallCmd(g, &ns), mcLinkCmd(g, &ns, true), mcLinkCmd(g, &ns, false), mcUnlinkCmd(g, &ns),
		mcCheckCmd(g, &ns), mcGatewaysCmd(g, &ns), mcAllowCmd(g, &ns), mcUninstallCmd(g))
	return m
}

func mcInstallCmd(g *globals, ns *string) *cobra.Command {
	o := mcext.Options{Gateway: true}
	var ignoreCluster bool
	c := &cobra.Command{
		Use:   "install",
		Short: "Output Kubernetes resources to install the linkerd-multicluster extension (pipe to kubectl apply -f -)",
		Long: "install renders the linkerd-multicluster chart: the linkerd-multicluster namespace, the\n" +
			"Link CRD, the gateway (our proxy in gateway mode behind a LoadBalancer Service with its\n" +
			"probe port) unless --gateway=false, and the ServiceAccount and RBAC a linked cluster's\n" +
			"service mirror uses.\n\n" +
			"  linkerd multicluster install | kubectl apply -f -\n" +
			"  linkerd multicluster install --gateway=false | kubectl apply -f -   # pod-to-pod only",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Namespace, o.LinkerdNamespace, o.Version = *ns, g.namespace, Version
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
			out, err := mcext.Render(o, cluster)
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(out)
			return err
		},
	}
	c.Flags().BoolVar(&o.Gateway, "gateway", true, "install the gateway (false for pod-to-pod multicluster only)")
	c.Flags().BoolVar(&ignoreCluster, "ignore-cluster", false, "render without reading the installed control plane's settings")
	vizValueFlags(c, &o.Values)
	return c
}

// mcLinkCmd is `link` (Secret, Link and the service mirror) or, with !withController,
// `link-gen` (Secret and Link; the service mirror comes from the chart's controllers).
func mcLinkCmd(g *globals, ns *string, withController bool) *cobra.Command {
	o := mcext.LinkOptions{Gateway: true}
	use, short := "link-gen", "Output the credentials Secret and Link another cluster needs to mirror this one"
	if withController {
		use, short = "link", "Output the credentials Secret, Link and service mirror another cluster needs to mirror this one"
	}
	c := &cobra.Command{
		Use:   use + " --cluster-name NAME",
		Short: short,
		Long: use + " reads this (the target) cluster: its gateway's address, port and identity and\n" +
			"a token of the remote-access ServiceAccount, and prints what to apply to the source\n" +
			"cluster. Run it against the target, apply it to the source:\n\n" +
			"  linkerd --context=east multicluster " + use + " --cluster-name east | kubectl --context=west apply -f -",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := g.restConfig()
			if err != nil {
				return err
			}
			k, err := g.client()
			if err != nil {
				return err
			}
			cluster, err := vizext.ControlPlaneValues(contextOf(c), k, g.namespace)
			if err != nil {
				return err
			}
			o.Namespace, o.LinkerdNamespace, o.CreatedBy = *ns, g.namespace, "linkerd/cli "+Version
			o.Server, o.CAData = cfg.Host, cfg.CAData
			out, err := mcext.LinkGen(contextOf(c), k, cluster, o)
			if err != nil {
				return err
			}
			if withController {
				ctrl, err := mcext.RenderController(*ns, o.ClusterName, Version)
				if err != nil {
					return err
				}
				out = append(out, ctrl...)
			}
			_, err = c.OutOrStdout().Write(out)
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&o.ClusterName, "cluster-name", "", "name of this cluster in the source cluster (required)")
	f.StringVar(&o.APIServerAddress, "api-server-address", "", "URL of this cluster's API server as the source cluster reaches it (default: the kubeconfig's)")
	f.StringVar(&o.ServiceAccount, "service-account-name", mc.RemoteAccessPrefix+"default", "ServiceAccount of this cluster whose token the source cluster uses")
	f.BoolVar(&o.Gateway, "gateway", true, "link through this cluster's gateway (false: pod-to-pod only)")
	f.StringVar(&o.GatewayAddresses, "gateway-addresses", "", "comma-separated addresses of the gateway (default: its Service's load balancer addresses)")
	f.IntVar(&o.GatewayPort, "gateway-port", 0, "port of the gateway (default: its Service's mc-gateway port)")
	f.StringVar(&o.Selector, "selector", "", "label selector of the Services mirrored through the gateway (default mirror.linkerd.io/exported=true)")
	f.StringVar(&o.RemoteDiscoverySelector, "remote-discovery-selector", "", "label selector of the Services mirrored pod to pod (default mirror.linkerd.io/exported=remote-discovery)")
	return c
}

func mcUnlinkCmd(g *globals, ns *string) *cobra.Command {
	var name string
	c := &cobra.Command{
		Use:   "unlink --cluster-name NAME",
		Short: "Output the Kubernetes resources of a link to delete (pipe to kubectl delete -f -)",
		Long: "unlink prints the Link, its credentials Secret, its service mirror and the mirrored\n" +
			"Services and Endpoints it made, for kubectl delete:\n\n" +
			"  linkerd --context=west multicluster unlink --cluster-name east | kubectl --context=west delete -f -",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if name == "" {
				return fmt.Errorf("--cluster-name is required: the name of the Link to remove")
			}
			dyn, err := g.dynamic()
			if err != nil {
				return err
			}
			refs, err := mcext.UnlinkRefs(contextOf(c), dyn, *ns, name)
			if err != nil {
				return err
			}
			return vizext.WriteRefs(c.OutOrStdout(), refs)
		},
	}
	c.Flags().StringVar(&name, "cluster-name", "", "name of the linked cluster (required)")
	return c
}

func mcCheckCmd(g *globals, ns *string) *cobra.Command {
	var f checkFlags
	c := &cobra.Command{
		Use:   "check",
		Short: "Check the multicluster extension and its links for potential problems",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return f.run(c, g, func(ctx context.Context, k checkClients) check.Report {
				if k.cfgErr != nil {
					return check.Report{Categories: []check.Category{{Name: "kubernetes-api", Checks: []check.Result{{
						Name: "can initialize the client", Result: "error", Error: k.cfgErr.Error()}}}}}
				}
				return check.RunMulticluster(ctx, k.kube, k.dyn, check.MulticlusterOptions{Namespace: *ns})
			})
		},
	}
	f.register(c)
	return c
}

func mcGatewaysCmd(g *globals, ns *string) *cobra.Command {
	return &cobra.Command{
		Use:   "gateways",
		Short: "Display the state of the gateways of the linked clusters",
		Long: "gateways prints, for each Link through a gateway, whether its service mirror's probes\n" +
			"find the gateway alive, how many Services are mirrored from that cluster, and the mean\n" +
			"probe latency:\n\n" +
			"  CLUSTER  ALIVE  NUM_SVC  LATENCY",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			k, err := g.client()
			if err != nil {
				return err
			}
			dyn, err := g.dynamic()
			if err != nil {
				return err
			}
			gws, err := mcext.Gateways(contextOf(c), k, dyn, *ns)
			if err != nil {
				return err
			}
			if len(gws) == 0 {
				fmt.Fprintln(c.OutOrStdout(), "No linked clusters with a gateway")
				return nil
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "CLUSTER\tALIVE\tNUM_SVC\tLATENCY")
			for _, gw := range gws {
				alive, latency := "-", "-"
				if gw.Alive != nil {
					alive = map[bool]string{true: "True", false: "False"}[*gw.Alive]
					if *gw.Alive && gw.Latency > 0 {
						latency = gw.Latency.Round(time.Millisecond).String()
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", gw.Cluster, alive, gw.Mirrored, latency)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, gw := range gws {
				if gw.Err != nil {
					fmt.Fprintf(c.ErrOrStderr(), "%s: %v\n", gw.Cluster, gw.Err)
				}
			}
			return nil
		},
	}
}

func mcAllowCmd(g *globals, ns *string) *cobra.Command {
	var sa string
	c := &cobra.Command{
		Use:   "allow --service-account-name NAME",
		Short: "Output the ServiceAccount and RBAC a linked cluster's service mirror authenticates as",
		Long: "allow prints another remote-access ServiceAccount (with its token Secret and read-only\n" +
			"RBAC), for links that should not share the default one:\n\n" +
			"  linkerd --context=east multicluster allow --service-account-name linkerd-service-mirror-remote-access-west | kubectl --context=east apply -f -\n" +
			"  linkerd --context=east multicluster link-gen --cluster-name east --service-account-name linkerd-service-mirror-remote-access-west",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if sa == "" {
				return fmt.Errorf("--service-account-name is required")
			}
			out, err := mcext.RenderRemoteAccess(*ns, g.namespace, sa, Version)
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(out)
			return err
		},
	}
	c.Flags().StringVar(&sa, "service-account-name", "", "name of the ServiceAccount (required)")
	return c
}

func mcUninstallCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "uninstall",
		Short: "Output Kubernetes resources to uninstall the linkerd-multicluster extension (pipe to kubectl delete -f -)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			dyn, err := g.dynamic()
			if err != nil {
				return err
			}
			links, err := mcext.Links(contextOf(c), dyn, "")
			if err != nil {
				return err
			}
			if len(links) > 0 {
				return fmt.Errorf("%d Link(s) remain (first: %s/%s): unlink them first with `linkerd multicluster unlink --cluster-name NAME | kubectl delete -f -`",
					len(links), links[0].Namespace, links[0].Name)
			}
			refs, err := mcext.Installed(contextOf(c), dyn)
			if err != nil {
				return err
			}
			if len(refs) == 0 {
				return fmt.Errorf("no linkerd-multicluster resources found (nothing labelled %s)", mcext.Selector)
			}
			return vizext.WriteRefs(c.OutOrStdout(), refs)
		},
	}
}
