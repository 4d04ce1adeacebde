package command

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/l5d-go/l5d/cli/diagnostics"
	"github.com/l5d-go/l5d/cli/podconn"
	"github.com/l5d-go/l5d/cli/resource"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// Ports of the linkerd-destination pod the diagnostics commands forward to.
const (
	destinationPort = 8086
	policyPort      = 8090
)

func diagnosticsCmd(g *globals) *cobra.Command {
	d := &cobra.Command{
		Use:   "diagnostics",
		Short: "Commands used to diagnose Linkerd components",
		Long: "diagnostics reads Linkerd's components directly, through the Kubernetes API server:\n" +
			"the proxies' and controllers' admin servers (pods/proxy) and the control plane's\n" +
			"Destination and policy APIs (a port-forward the command opens itself).",
	}
	d.AddCommand(endpointsCmd(g), profileDiagCmd(g), policyCmd(g), proxyMetricsCmd(g), controllerMetricsCmd(g))
	return d
}

// controlPlaneAddr returns override when set; otherwise it opens a port-forward to port
// of a linkerd-destination pod and returns its local address and a function closing it.
func controlPlaneAddr(ctx context.Context, g *globals, override string, port int) (string, func(), error) {
	if override != "" {
		return override, func() {}, nil
	}
	cfg, err := g.restConfig()
	if err != nil {
		return "", nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", nil, fmt.Errorf("kubernetes client: %w", err)
	}
	pod, err := resource.ControlPlanePod(ctx, client, g.namespace, "destination")
	if err != nil {
		return "", nil, err
	}
	f, err := podconn.Open(ctx, cfg, g.namespace, pod, port)
	if err != nil {
		return "", nil, err
	}
	return f.Addr, f.Close, nil
}

func endpointsCmd(g *globals) *cobra.Command {
	var (
		addr    string
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:   "endpoints AUTHORITY...",
		Short: "Introspect Linkerd's service discovery state (e.g. web-svc.emojivoto.svc.cluster.local:80)",
		Long: "endpoints asks the Destination API which endpoints it serves proxies for each authority.\n" +
			"It reaches the API through a port-forward to a linkerd-destination pod that it opens\n" +
			"itself; --destination-addr names an address to use instead.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(contextOf(c), timeout)
			defer cancel()
			a, done, err := controlPlaneAddr(ctx, g, addr, destinationPort)
			if err != nil {
				return err
			}
			defer done()
			for i, authority := range args {
				eps, err := diagnostics.Endpoints(ctx, a, authority)
				if err != nil {
					return err
				}
				if i > 0 {
					fmt.Fprintln(c.OutOrStdout())
				}
				diagnostics.WriteEndpoints(c.OutOrStdout(), authority, eps)
			}
			return nil
		},
	}
	c.Flags().StringVar(&addr, "destination-addr", "", "host:port of the Destination API to use instead of a port-forward to linkerd-destination")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	return c
}

func profileDiagCmd(g *globals) *cobra.Command {
	var (
		addr, ns, output string
		timeout          time.Duration
	)
	c := &cobra.Command{
		Use:   "profile [-n NAMESPACE] AUTHORITY",
		Short: "Introspect the service profile the Destination API serves proxies (e.g. web-svc.emojivoto.svc.cluster.local:80)",
		Long: "profile prints, as JSON or YAML, the profile the Destination API answers a proxy in\n" +
			"--namespace (the client's namespace, default default) for AUTHORITY: routes, retry budget,\n" +
			"traffic split and whether the port is opaque. It reaches the API through a port-forward\n" +
			"to a linkerd-destination pod; --destination-addr names an address to use instead.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if output != "json" && output != "yaml" {
				return fmt.Errorf("output format %q: want json or yaml", output)
			}
			ctx, cancel := context.WithTimeout(contextOf(c), timeout)
			defer cancel()
			a, done, err := controlPlaneAddr(ctx, g, addr, destinationPort)
			if err != nil {
				return err
			}
			defer done()
			p, err := diagnostics.Profile(ctx, a, args[0], ns)
			if err != nil {
				return err
			}
			return diagnostics.WritePolicy(c.OutOrStdout(), p, output)
		},
	}
	c.Flags().StringVar(&addr, "destination-addr", "", "host:port of the Destination API to use instead of a port-forward to linkerd-destination")
	c.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the client whose view is shown")
	c.Flags().StringVarP(&output, "output", "o", "json", "output format: json or yaml")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	return c
}

func policyCmd(g *globals) *cobra.Command {
	var (
		addr, ns, output, clusterDomain string
		timeout                         time.Duration
	)
	c := &cobra.Command{
		Use:   "policy [-n NAMESPACE] RESOURCE PORT",
		Short: "Introspect the policy the policy controller serves proxies for a Service or a pod's port",
		Long: "policy prints, as verbose YAML or JSON, what the policy controller answers proxies:\n" +
			"for svc/NAME PORT the outbound policy a client in the namespace gets for the Service\n" +
			"(routes, backends, protocol), for pod/NAME (or a bare pod name) PORT the inbound policy\n" +
			"the pod's proxy enforces on that port (authorizations, routes). It reaches the policy\n" +
			"API through a port-forward to a linkerd-destination pod; --policy-addr names an\n" +
			"address to use instead.\n\n" +
			"  linkerd diagnostics policy -n emojivoto svc/web 80\n" +
			"  linkerd diagnostics policy -n emojivoto web-5b97875957-xn269 8080",
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			if output != "json" && output != "yaml" {
				return fmt.Errorf("output format %q: want json or yaml", output)
			}
			ref, err := resource.Parse(args[0])
			if err != nil {
				return err
			}
			if ref.Kind != resource.Service && ref.Kind != resource.Pod {
				return fmt.Errorf("resource %q: want svc/NAME or pod/NAME", args[0])
			}
			port, err := strconv.ParseUint(args[1], 10, 16)
			if err != nil || port == 0 {
				return fmt.Errorf("port %q: want a number 1-65535", args[1])
			}
			ctx, cancel := context.WithTimeout(contextOf(c), timeout)
			defer cancel()
			a, done, err := controlPlaneAddr(ctx, g, addr, policyPort)
			if err != nil {
				return err
			}
			defer done()
			if ref.Kind == resource.Service {
				authority := fmt.Sprintf("%s.%s.svc.%s:%d", ref.Name, ns, clusterDomain, port)
				p, err := diagnostics.OutboundPolicy(ctx, a, authority, ns)
				if err != nil {
					return err
				}
				return diagnostics.WritePolicy(c.OutOrStdout(), p, output)
			}
			srv, err := diagnostics.Policy(ctx, a, ns+":"+ref.Name, uint32(port))
			if err != nil {
				return err
			}
			return diagnostics.WritePolicy(c.OutOrStdout(), srv, output)
		},
	}
	c.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the resource")
	c.Flags().StringVar(&addr, "policy-addr", "", "host:port of the policy API to use instead of a port-forward to linkerd-destination")
	c.Flags().StringVarP(&output, "output", "o", "yaml", "output format: json or yaml")
	c.Flags().StringVar(&clusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	return c
}

func proxyMetricsCmd(g *globals) *cobra.Command {
	var (
		ns      string
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:   "proxy-metrics [-n NAMESPACE] RESOURCE...",
		Short: "Fetch the Prometheus metrics of the proxies of a resource (deploy/web, pod/web-0, web-0, ...)",
		Long: "proxy-metrics prints the raw /metrics of the proxy of each meshed pod the resources\n" +
			"select, read from the proxy's admin port 4191 through the API server's pods/proxy.\n\n" +
			"  linkerd diagnostics proxy-metrics -n emojivoto deploy/web",
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(contextOf(c), timeout)
			defer cancel()
			client, err := g.client()
			if err != nil {
				return err
			}
			pods, err := selectPods(ctx, client, ns, args)
			if err != nil {
				return err
			}
			eps := diagnostics.ProxyEndpoints(pods)
			if len(eps) == 0 {
				return fmt.Errorf("no meshed pod among the %d pods selected", len(pods))
			}
			return diagnostics.WriteMetrics(ctx, c.OutOrStdout(), client, eps)
		},
	}
	c.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the resources")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the answers")
	return c
}

func controllerMetricsCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "controller-metrics",
		Short: "Fetch the Prometheus metrics of every control-plane container",
		Long: "controller-metrics prints the raw /metrics of each control-plane container's admin\n" +
			"server (its admin-http port) in every pod of the control-plane namespace, through\n" +
			"the API server's pods/proxy.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(contextOf(c), timeout)
			defer cancel()
			client, err := g.client()
			if err != nil {
				return err
			}
			pods, err := resource.Pods(ctx, client, g.namespace, resource.Ref{Kind: resource.Pod})
			if err != nil {
				return err
			}
			eps := diagnostics.ControllerEndpoints(pods)
			if len(eps) == 0 {
				return fmt.Errorf("no control-plane pod with an admin port in namespace %s (is the control plane installed? try linkerd check)", g.namespace)
			}
			return diagnostics.WriteMetrics(ctx, c.OutOrStdout(), client, eps)
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the answers")
	return c
}

// selectPods resolves every resource argument to its pods, in argument order, each pod
// once.
func selectPods(ctx context.Context, client kubernetes.Interface, ns string, args []string) ([]corev1.Pod, error) {
	var out []corev1.Pod
	seen := map[string]bool{}
	for _, a := range args {
		ref, err := resource.Parse(a)
		if err != nil {
			return nil, err
		}
		pods, err := resource.Pods(ctx, client, ns, ref)
		if err != nil {
			return nil, err
		}
		for _, p := range pods {
			if k := p.Namespace + "/" + p.Name; !seen[k] {
				seen[k] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func identityCmd(g *globals) *cobra.Command {
	var (
		ns      string
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:   "identity [-n NAMESPACE] POD...",
		Short: "Display the certificate(s) of one or more selected pod(s)",
		Long: "identity prints, for each pod (a pod name or any resource selecting pods, e.g.\n" +
			"deploy/web), the mTLS certificate its proxy presents, in openssl's text layout. The\n" +
			"certificate is read from the proxy's admin server through the API server; it is\n" +
			"public information only (the private key never leaves the proxy).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(contextOf(c), timeout)
			defer cancel()
			client, err := g.client()
			if err != nil {
				return err
			}
			pods, err := selectPods(ctx, client, ns, args)
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			failed := 0
			for i, p := range pods {
				if i > 0 {
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "POD %s (%d of %d)\n\n", p.Name, i+1, len(pods))
				if !resource.Meshed(&p) {
					failed++
					fmt.Fprintf(w, "The pod has no linkerd-proxy container: it is not meshed.\n")
					continue
				}
				chain, ok, err := diagnostics.PodCertificate(ctx, client, p.Namespace, p.Name)
				switch {
				case err != nil:
					failed++
					fmt.Fprintf(w, "Error: %v\n", err)
				case !ok:
					failed++
					fmt.Fprintln(w, "The proxy has no certificate yet.")
				default:
					diagnostics.WriteCertificate(w, chain[0])
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d pods have no certificate to show", failed, len(pods))
			}
			return nil
		},
	}
	c.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the pods")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the answers")
	return c
}
