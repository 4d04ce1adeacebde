package command

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"

	"github.com/l5d-go/l5d/cli/viztap"
	"github.com/l5d-go/l5d/pkg/vizapi"
)

// tapFlags are `viz tap`'s flags.
type tapFlags struct {
	namespace, to, toNS, method, path, authority, scheme, output string
	maxRps                                                       float64
}

func tapCmd(g *globals) *cobra.Command {
	var f tapFlags
	c := &cobra.Command{
		Use:   "tap (deploy|sts|ds|job|cronjob|rc|rs|pod|svc|ns)[/NAME] [NAME] [flags]",
		Short: "Listen to a live stream of a resource's requests",
		Long: "tap streams the requests the pods of a resource send and receive, as their proxies see\n" +
			"them, until interrupted: a req line when a request starts, rsp when its response\n" +
			"starts, end when it ends, with the proxy direction, the addresses, the TLS state,\n" +
			"method, authority, path, status and latency. Bodies are never shown.\n\n" +
			"It goes through the viz extension's tap API (tap.linkerd.io), which needs RBAC\n" +
			"permission to watch the resource's tap subresource, e.g.\n" +
			"  kubectl create clusterrolebinding $USER-tap-admin --clusterrole=linkerd-linkerd-viz-tap-admin --user=$USER\n\n" +
			"  linkerd viz tap deploy/web -n emojivoto\n" +
			"  linkerd viz tap deploy/web -n emojivoto --to deploy/voting --path /emojivoto.v1.VotingService\n" +
			"  linkerd viz tap ns/emojivoto -o wide",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			req, err := f.request(args)
			if err != nil {
				return err
			}
			p, err := viztap.NewPrinter(c.OutOrStdout(), f.output, req.Target.Resource.Type)
			if err != nil {
				return err
			}
			st, err := g.startTap(c, req)
			if err != nil {
				return err
			}
			defer st.Close()
			for {
				ev, err := st.Next()
				if errors.Is(err, io.EOF) || contextOf(c).Err() != nil {
					return nil
				}
				if err != nil {
					return err
				}
				if err := p.Print(ev); err != nil {
					return err
				}
			}
		},
	}
	f.register(c)
	c.Flags().StringVarP(&f.output, "output", "o", "", "output format: wide, json or jsonpath=TEMPLATE")
	return c
}

// register adds the flags tap and top share.
func (f *tapFlags) register(c *cobra.Command) {
	c.Flags().StringVarP(&f.namespace, "namespace", "n", "default", "namespace of the resource")
	c.Flags().StringVar(&f.to, "to", "", "only requests to this resource (e.g. deploy/catalog)")
	c.Flags().StringVar(&f.toNS, "to-namespace", "", "namespace of --to (default: --namespace)")
	c.Flags().StringVar(&f.method, "method", "", "only requests with this HTTP method")
	c.Flags().StringVar(&f.path, "path", "", "only requests whose path starts with this prefix")
	c.Flags().StringVar(&f.authority, "authority", "", "only requests to this authority")
	c.Flags().StringVar(&f.scheme, "scheme", "", "only requests with this scheme (http or https)")
	c.Flags().Float64Var(&f.maxRps, "max-rps", vizapi.DefaultMaxRps, "the most requests per second to show")
}

// request validates the resource arguments and flags into a tap request.
func (f *tapFlags) request(args []string) (vizapi.TapByResourceRequest, error) {
	r, err := parseResourceArgs(args, f.namespace)
	if err != nil {
		return vizapi.TapByResourceRequest{}, err
	}
	if _, ok := vizapi.TapResources[r.Type]; !ok || r.Name == "" {
		return vizapi.TapByResourceRequest{}, fmt.Errorf("tap takes a named workload, pod, service or namespace (e.g. deploy/web), not %q", args[0])
	}
	if f.maxRps < 0 {
		return vizapi.TapByResourceRequest{}, fmt.Errorf("--max-rps %v: must be positive", f.maxRps)
	}
	toNS := f.toNS
	if toNS == "" {
		toNS = f.namespace
	}
	to, err := parseRef("to", f.to, toNS)
	if err != nil {
		return vizapi.TapByResourceRequest{}, err
	}
	if to != nil && to.Name == "" {
		return vizapi.TapByResourceRequest{}, fmt.Errorf("--to %s: name a resource, e.g. deploy/catalog", f.to)
	}
	return vizapi.TapByResourceRequest{
		Target: vizapi.ResourceSelection{Resource: r},
		Match:  vizapi.TapMatch{To: to, Method: f.method, Path: f.path, Authority: f.authority, Scheme: f.scheme},
		MaxRps: f.maxRps,
	}, nil
}

// startTap opens a tap through the API server as the CLI's user.
func (g *globals) startTap(c *cobra.Command, req vizapi.TapByResourceRequest) (*vizapi.TapStream, error) {
	cfg, err := g.restConfig()
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	st, err := vizapi.Tap(contextOf(c), kube.Discovery().RESTClient(), req)
	if err != nil {
		return nil, explainTap(err)
	}
	return st, nil
}

// explainTap adds what to do to the tap API's refusals.
func explainTap(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w\ngrant tap access with: kubectl create clusterrolebinding $USER-tap-admin --clusterrole=linkerd-linkerd-viz-tap-admin --user=$USER", err)
	case apierrors.IsServiceUnavailable(err) || apierrors.IsNotFound(err) && strings.Contains(err.Error(), "could not find the requested resource"):
		return fmt.Errorf("%w\nis the viz extension's tap API running? Check with `linkerd viz check`", err)
	}
	return err
}
