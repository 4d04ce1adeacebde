package command

import (
	"context"
	"fmt"
	"time"

	"github.com/l5d-go/l5d/cli/authz"
	"github.com/l5d-go/l5d/cli/resource"
	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

func authzCmd(g *globals) *cobra.Command {
	var (
		ns      string
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:   "authz [-n NAMESPACE] RESOURCE [NAME]",
		Short: "List authorizations for a resource",
		Long: "authz lists, for the pods of a resource (deploy/web, deploy web, a pod name, ...), the\n" +
			"Servers that select them and what authorizes traffic to each: AuthorizationPolicies\n" +
			"targeting the Server (ROUTE *) or one of its HTTPRoutes/GRPCRoutes (ROUTE is the\n" +
			"route's name), ServerAuthorizations selecting the Server, and the default policy the\n" +
			"proxies apply to other ports (ROUTE default) and to probes (ROUTE probe).\n\n" +
			"  linkerd authz -n emojivoto deploy/web",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			arg := args[0]
			if len(args) == 2 {
				arg += "/" + args[1]
			}
			ref, err := resource.Parse(arg)
			if err != nil {
				return err
			}
			if ref.Kind == resource.Namespace {
				return fmt.Errorf("resource %q: authz lists the authorizations of a workload or pod, not a namespace", arg)
			}
			ctx, cancel := context.WithTimeout(contextOf(c), timeout)
			defer cancel()
			cfg, err := g.restConfig()
			if err != nil {
				return err
			}
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("kubernetes client: %w", err)
			}
			dyn, err := dynamic.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("kubernetes client: %w", err)
			}
			pods, err := resource.Pods(ctx, client, ns, ref)
			if err != nil {
				return err
			}
			rows, err := authz.List(ctx, dyn, ns, pods)
			if err != nil {
				return err
			}
			return authz.WriteTable(c.OutOrStdout(), rows)
		},
	}
	c.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the resource")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the API server")
	return c
}
