package command

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/l5d-go/l5d/cli/vizext"
	"github.com/l5d-go/l5d/cli/viztable"
	"github.com/l5d-go/l5d/pkg/vizapi"
)

// DefaultVizNamespace is where `linkerd viz install` puts the extension.
const DefaultVizNamespace = vizext.DefaultNamespace

// metricsAPIService is the Service of metrics-api in the viz namespace.
const metricsAPIService = "metrics-api"

// vizAPI is how a viz command reaches metrics-api: through the API server's service
// proxy to Service metrics-api (port "http") in the viz namespace.
type vizAPI struct {
	kube   kubernetes.Interface
	client *vizapi.Client
	ns     string
}

func (g *globals) vizAPI(vizNS string) (*vizAPI, error) {
	cfg, err := g.restConfig()
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes HTTP client: %w", err)
	}
	host := strings.TrimSuffix(cfg.Host, "/")
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	if cfg.APIPath != "" && cfg.APIPath != "/api" {
		host += strings.TrimSuffix(cfg.APIPath, "/")
	}
	return &vizAPI{kube: kube, ns: vizNS, client: &vizapi.Client{HTTP: hc, BaseURL: host + vizapi.ServiceProxyPath(vizNS)}}, nil
}

// installed reports whether the viz extension's metrics-api Service exists.
func (v *vizAPI) installed(ctx context.Context) (bool, error) {
	_, err := v.kube.CoreV1().Services(v.ns).Get(ctx, metricsAPIService, metav1.GetOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("looking for the viz extension (service %s/%s): %w", v.ns, metricsAPIService, err)
}

// explain turns a metrics-api failure into an error saying what to check.
func (v *vizAPI) explain(err error) error {
	if errors.Is(err, vizapi.ErrNotFound) || strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", http.StatusServiceUnavailable)) {
		return fmt.Errorf("%w\nis the viz extension running? Check with `linkerd viz check`", err)
	}
	return err
}

// need fails unless metrics-api is installed.
func (v *vizAPI) need(ctx context.Context) error {
	ok, err := v.installed(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("the viz extension is not installed in namespace %s (service %s not found): run `linkerd viz install | kubectl apply -f -`", v.ns, metricsAPIService)
	}
	return nil
}

// parseResourceArgs parses "TYPE", "TYPE/NAME" or "TYPE NAME" into a resource of
// namespace ns.
func parseResourceArgs(args []string, ns string) (vizapi.Resource, error) {
	t, name, hasName := strings.Cut(args[0], "/")
	ct, err := vizapi.CanonicalType(t)
	if err != nil {
		return vizapi.Resource{}, err
	}
	if len(args) == 2 {
		if hasName {
			return vizapi.Resource{}, fmt.Errorf("name given twice: %q and %q", args[0], args[1])
		}
		name, hasName = args[1], true
	}
	if len(args) > 2 {
		return vizapi.Resource{}, fmt.Errorf("too many arguments: want TYPE, TYPE/NAME or TYPE NAME")
	}
	if hasName && name == "" {
		return vizapi.Resource{}, fmt.Errorf("resource %q: empty name", args[0])
	}
	if ct == vizapi.All && name != "" {
		return vizapi.Resource{}, fmt.Errorf("resource %q: \"all\" takes no name", args[0])
	}
	r := vizapi.Resource{Type: ct, Name: name, Namespace: ns}
	if ct == vizapi.Namespace {
		r.Namespace = ""
	}
	return r, nil
}

// parseRef parses a --to/--from value "TYPE/NAME" (or "TYPE") in namespace ns.
func parseRef(flag, s, ns string) (*vizapi.Resource, error) {
	if s == "" {
		return nil, nil
	}
	r, err := parseResourceArgs([]string{s}, ns)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	if r.Type == vizapi.All {
		return nil, fmt.Errorf("--%s: \"all\" is not a resource; name one, e.g. deploy/web", flag)
	}
	return &r, nil
}

// vizFlags are the flags every metrics-api command shares.
type vizFlags struct {
	namespace, vizNS, window, output, selector string
	allNamespaces                              bool
}

func (f *vizFlags) register(c *cobra.Command, defWindow string) {
	c.Flags().StringVarP(&f.namespace, "namespace", "n", "default", "namespace of the resources")
	c.Flags().BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "the resources of every namespace (--namespace is ignored)")
	c.Flags().StringVarP(&f.window, "time-window", "t", defWindow, "window of the figures (e.g. 15s, 1m, 10m)")
	c.Flags().StringVarP(&f.output, "output", "o", viztable.Table, "output format: table, wide or json")
	c.Flags().StringVarP(&f.selector, "selector", "l", "", "label selector narrowing the resources (e.g. app=web)")
	c.Flags().StringVar(&f.vizNS, "viz-namespace", DefaultVizNamespace, "namespace of the viz extension")
}

func (f *vizFlags) ns() string {
	if f.allNamespaces {
		return ""
	}
	return f.namespace
}

func (f *vizFlags) check() error {
	if err := viztable.CheckFormat(f.output); err != nil {
		return err
	}
	if _, err := vizapi.ParseWindow(f.window); err != nil {
		return fmt.Errorf("--time-window: %w", err)
	}
	return nil
}

func edgesCmd(g *globals) *cobra.Command {
	var f vizFlags
	c := &cobra.Command{
		Use:   "edges (deploy|sts|ds|job|pod|rc|cronjob) [-n NAMESPACE]",
		Short: "Display the connections between resources, and Linkerd's mTLS identities on them",
		Long: "edges lists the resources of a type that talk to one another, from the metrics the viz\n" +
			"extension's Prometheus collected: SRC DST SRC_NS DST_NS SECURED (-o wide: CLIENT_ID\n" +
			"SERVER_ID MSG instead of SECURED; SECURED is √ when both proxies saw each other's identity).\n\n" +
			"  linkerd viz edges deploy -n emojivoto\n" +
			"  linkerd viz edges po -A -o wide",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			r, err := parseResourceArgs(args, f.ns())
			if err != nil {
				return err
			}
			if r.Name != "" || r.Type == vizapi.All {
				return fmt.Errorf("edges takes a resource type (e.g. deploy), not %q", args[0])
			}
			v, err := g.vizAPI(f.vizNS)
			if err != nil {
				return err
			}
			ctx := contextOf(c)
			if err := v.need(ctx); err != nil {
				return err
			}
			rsp, err := v.client.Edges(ctx, &vizapi.EdgesRequest{Selector: vizapi.ResourceSelection{Resource: r, LabelSelector: f.selector}, TimeWindow: f.window})
			if err != nil {
				return v.explain(err)
			}
			if rsp.Error != nil {
				return errors.New(rsp.Error.Error)
			}
			return viztable.WriteEdges(c.OutOrStdout(), rsp.Ok, f.output)
		},
	}
	f.register(c, vizapi.DefaultTimeWindow)
	return c
}

func routesCmd(g *globals) *cobra.Command {
	var (
		f        vizFlags
		to, toNS string
	)
	c := &cobra.Command{
		Use:   "routes (deploy|sts|ds|job|pod|svc|...)[/NAME] [--to TYPE/NAME] [-n NAMESPACE]",
		Short: "Display route stats: per ServiceProfile or Gateway API route of the services a resource serves or calls",
		Long: "routes prints, per route of the services a resource serves (or, with --to, of its\n" +
			"requests to a service): their ServiceProfile routes and their HTTPRoutes and GRPCRoutes,\n" +
			"the golden metrics over --time-window:\n\n" +
			"  ROUTE SERVICE SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99\n\n" +
			"[DEFAULT] counts the requests that matched no route. With -o wide the success rate and\n" +
			"rate are shown both as the caller saw them (EFFECTIVE, after retries) and as sent to\n" +
			"the endpoints (ACTUAL, every attempt).\n\n" +
			"  linkerd viz routes deploy/web -n emojivoto\n" +
			"  linkerd viz routes deploy/books -n booksapp --to svc/authors -o wide",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			r, err := parseResourceArgs(args, f.ns())
			if err != nil {
				return err
			}
			if r.Type == vizapi.All || r.Type == vizapi.Authority {
				return fmt.Errorf("routes takes a service or workload, not %q", args[0])
			}
			if toNS == "" {
				toNS = f.namespace
			}
			toRef, err := parseRef("to", to, toNS)
			if err != nil {
				return err
			}
			v, err := g.vizAPI(f.vizNS)
			if err != nil {
				return err
			}
			ctx := contextOf(c)
			if err := v.need(ctx); err != nil {
				return err
			}
			rsp, err := v.client.TopRoutes(ctx, &vizapi.TopRoutesRequest{Selector: vizapi.ResourceSelection{Resource: r, LabelSelector: f.selector},
				TimeWindow: f.window, ToResource: toRef})
			if err != nil {
				return v.explain(err)
			}
			if rsp.Error != nil {
				return errors.New(rsp.Error.Error)
			}
			return viztable.WriteRoutes(c.OutOrStdout(), rsp.Ok, f.output)
		},
	}
	f.register(c, vizapi.DefaultTimeWindow)
	c.Flags().StringVar(&to, "to", "", "only the requests to this resource (e.g. svc/authors)")
	c.Flags().StringVar(&toNS, "to-namespace", "", "namespace of --to (default: --namespace)")
	return c
}

// statViaAPI runs `viz stat` through metrics-api.
func statViaAPI(c *cobra.Command, v *vizAPI, f *vizFlags, args []string, from, fromNS, to, toNS string) error {
	r, err := parseResourceArgs(args, f.ns())
	if err != nil {
		return err
	}
	if from != "" && to != "" {
		return errors.New("--from and --to cannot be used together")
	}
	if fromNS == "" {
		fromNS = f.namespace
	}
	if toNS == "" {
		toNS = f.namespace
	}
	fromRef, err := parseRef("from", from, fromNS)
	if err != nil {
		return err
	}
	toRef, err := parseRef("to", to, toNS)
	if err != nil {
		return err
	}
	rsp, err := v.client.StatSummary(contextOf(c), &vizapi.StatSummaryRequest{
		Selector:   vizapi.ResourceSelection{Resource: r, LabelSelector: f.selector},
		TimeWindow: f.window, ToResource: toRef, FromResource: fromRef, TCPStats: true,
	})
	if err != nil {
		return v.explain(err)
	}
	if rsp.Error != nil {
		return errors.New(rsp.Error.Error)
	}
	return viztable.WriteStat(c.OutOrStdout(), rsp.Ok, viztable.StatOptions{Format: f.output, AllNamespaces: f.allNamespaces, Prefix: r.Type == vizapi.All})
}

// routeStatsCmd is stat-inbound or stat-outbound.
func routeStatsCmd(g *globals, outbound bool) *cobra.Command {
	var f vizFlags
	use, short, long := "stat-inbound", "Display inbound traffic stats of a resource, per server and route",
		"stat-inbound prints the HTTP traffic a resource's pods served over --time-window, per\n"+
			"Server and route (Gateway API or policy HTTPRoutes and GRPCRoutes; [default] for the\n"+
			"default policy and route):\n\n"+
			"  NAME SERVER ROUTE TYPE SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99\n\n"+
			"  linkerd viz stat-inbound deploy/web -n emojivoto"
	if outbound {
		use, short, long = "stat-outbound", "Display outbound traffic stats of a resource, per route and backend",
			"stat-outbound prints the HTTP and gRPC traffic a resource's pods sent over --time-window,\n"+
				"per service and route, with its timeouts and retries, and per backend below it:\n\n"+
				"  NAME SERVICE ROUTE TYPE BACKEND SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99 TIMEOUTS RETRIES\n\n"+
				"  linkerd viz stat-outbound deploy/web -n emojivoto"
	}
	c := &cobra.Command{
		Use:   use + " (deploy|sts|ds|job|pod|ns|rc|cronjob)/NAME [-n NAMESPACE]",
		Short: short,
		Long:  long,
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if f.output == viztable.Wide {
				return fmt.Errorf("--output wide: %s prints table or json", use)
			}
			if f.allNamespaces || f.selector != "" {
				return fmt.Errorf("%s takes one resource: --all-namespaces and --selector do not apply", use)
			}
			r, err := parseResourceArgs(args, f.namespace)
			if err != nil {
				return err
			}
			if r.Type == vizapi.All || r.Type == vizapi.Authority || r.Type == vizapi.Service {
				return fmt.Errorf("%s takes a workload, pod or namespace, not %q", use, args[0])
			}
			v, err := g.vizAPI(f.vizNS)
			if err != nil {
				return err
			}
			ctx := contextOf(c)
			if err := v.need(ctx); err != nil {
				return err
			}
			req := &vizapi.RouteStatsRequest{Resource: r, TimeWindow: f.window}
			if outbound {
				rsp, err := v.client.StatOutbound(ctx, req)
				if err != nil {
					return v.explain(err)
				}
				return viztable.WriteStatOutbound(c.OutOrStdout(), rsp, f.output)
			}
			rsp, err := v.client.StatInbound(ctx, req)
			if err != nil {
				return v.explain(err)
			}
			return viztable.WriteStatInbound(c.OutOrStdout(), rsp, f.output)
		},
	}
	f.register(c, vizapi.DefaultTimeWindow)
	c.Flags().Lookup("all-namespaces").Hidden = true
	c.Flags().Lookup("selector").Hidden = true
	return c
}
