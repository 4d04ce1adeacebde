package command

import (
	"context"
	"fmt"
	"strings"
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
	d.AddCommand(ep, policyCmd(),
		metricsCmd("proxy-metrics", "Fetch the Prometheus metrics of a proxy (kubectl port-forward POD 4191)", "localhost:4191"),
		metricsCmd("controller-metrics", "Fetch the Prometheus metrics of a control-plane component (kubectl port-forward -n linkerd deploy/linkerd-destination 9996)", "localhost:9996"))
	return d
}

func policyCmd() *cobra.Command {
	var (
		addr, workload, output string
		port                   uint32
		timeout                time.Duration
	)
	c := &cobra.Command{
		Use:   "policy --workload NAMESPACE:POD --port PORT",
		Short: "Introspect the inbound policy the policy controller serves a pod's proxy for a port",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if output != "json" && output != "yaml" {
				return fmt.Errorf("output format %q: want json or yaml", output)
			}
			ctx, cancel := context.WithTimeout(contextOf(c), timeout)
			defer cancel()
			srv, err := diagnostics.Policy(ctx, addr, workload, port)
			if err != nil {
				return err
			}
			return diagnostics.WritePolicy(c.OutOrStdout(), srv, output)
		},
	}
	c.Flags().StringVar(&addr, "policy-addr", "localhost:8090", "host:port of the inbound policy API (e.g. through kubectl port-forward -n linkerd deploy/linkerd-destination 8090)")
	c.Flags().StringVar(&workload, "workload", "", "the pod as namespace:pod")
	c.Flags().Uint32Var(&port, "port", 0, "the pod's port")
	c.Flags().StringVarP(&output, "output", "o", "yaml", "output format: json or yaml")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the answer")
	return c
}

func metricsCmd(name, short, defaultAddr string) *cobra.Command {
	var (
		addr    string
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:   name + " --admin-addr HOST:PORT",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(contextOf(c), timeout)
			defer cancel()
			body, err := diagnostics.Metrics(ctx, addr)
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(body)
			return err
		},
	}
	c.Flags().StringVar(&addr, "admin-addr", defaultAddr, "host:port of the admin server")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the answer")
	return c
}

func identityCmd() *cobra.Command {
	var (
		addr    string
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:   "identity --admin-addr HOST:PORT",
		Short: "Show what a proxy's admin server tells about its mTLS certificate (kubectl port-forward POD 4191)",
		Long: "identity shows the certificate a proxy's admin server serves on /identity/certificate\n" +
			"(subject, DNS names, issuer, validity) and its refresh count from the identity metrics.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(contextOf(c), timeout)
			defer cancel()
			id, err := diagnostics.Identity(ctx, addr)
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			if chain, ok, err := diagnostics.Certificate(ctx, addr); err != nil {
				return err
			} else if ok {
				leaf := chain[0]
				fmt.Fprintf(w, "Subject: %s\nDNS names: %s\nIssuer: %s\nValid: %s to %s\n", leaf.Subject.CommonName,
					strings.Join(leaf.DNSNames, ", "), leaf.Issuer.CommonName, leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
			}
			if id.Expires.IsZero() {
				fmt.Fprintln(w, "The proxy has no certificate yet.")
			} else {
				fmt.Fprintf(w, "Certificate expires: %s (in %s)\n", id.Expires.Format(time.RFC3339), time.Until(id.Expires).Round(time.Minute))
			}
			fmt.Fprintf(w, "Certificate refreshes: %d\n", id.Refreshes)
			return nil
		},
	}
	c.Flags().StringVar(&addr, "admin-addr", "localhost:4191", "host:port of the proxy's admin server")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the answer")
	return c
}
