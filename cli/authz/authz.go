// Package authz implements `linkerd authz`: it lists the policy resources that apply to a
// workload's pods — the Servers selecting them, the AuthorizationPolicies targeting those
// Servers or their routes, and the ServerAuthorizations selecting the Servers — plus the
// default policy the pods' proxies fall back to.
package authz

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// Route resources whose parentRefs may name a Server.
var routeResources = []schema.GroupVersionResource{
	api.HTTPRoutes,
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "grpcroutes"},
}

// DefaultPolicyEnv is the proxy's environment variable holding its default inbound policy.
const DefaultPolicyEnv = proxyconf.EnvInboundDefaultPolicy

// Row is one line of the table: an authorization (AuthorizationPolicy or
// ServerAuthorization) of a Server, on one of its routes or on all of them ("*").
type Row struct {
	Route, Server, AuthorizationPolicy, ServerAuthorization string
}

// List returns the rows for pods (the workload's pods, all in namespace ns): for each
// Server in ns selecting any of them, the AuthorizationPolicies targeting the Server
// (route "*") or a route attached to it (the route's name), and the ServerAuthorizations
// selecting it; then the default policy rows ("default" and "probe") of each default
// inbound policy the pods' proxies use. Route CRDs that are not installed are skipped.
func List(ctx context.Context, dyn dynamic.Interface, ns string, pods []corev1.Pod) ([]Row, error) {
	var servers []api.Server
	if err := listInto(ctx, dyn, api.Servers, ns, &servers); err != nil {
		return nil, err
	}
	var policies []api.AuthorizationPolicy
	if err := listInto(ctx, dyn, api.AuthorizationPolicies, ns, &policies); err != nil {
		return nil, err
	}
	var sazs []api.ServerAuthorization
	if err := listInto(ctx, dyn, api.ServerAuthorizations, ns, &sazs); err != nil {
		return nil, err
	}
	type route struct {
		name, kind, group string
		parents           []string // Server names
	}
	var routes []route
	for _, gvr := range routeResources {
		var rs []struct {
			metav1.ObjectMeta `json:"metadata"`
			Spec              struct {
				ParentRefs []struct {
					Group     string `json:"group"`
					Kind      string `json:"kind"`
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"parentRefs"`
			} `json:"spec"`
		}
		if err := listInto(ctx, dyn, gvr, ns, &rs); err != nil {
			if isMissingResource(err) {
				continue
			}
			return nil, err
		}
		kind := "HTTPRoute"
		if gvr.Resource == "grpcroutes" {
			kind = "GRPCRoute"
		}
		for _, r := range rs {
			rt := route{name: r.Name, kind: kind, group: gvr.Group}
			for _, p := range r.Spec.ParentRefs {
				if p.Group == api.Group && p.Kind == "Server" && (p.Namespace == "" || p.Namespace == ns) {
					rt.parents = append(rt.parents, p.Name)
				}
			}
			routes = append(routes, rt)
		}
	}

	slices.SortFunc(servers, func(a, b api.Server) int { return strings.Compare(a.Name, b.Name) })
	var rows []Row
	for _, srv := range servers {
		if !selectsAny(srv, pods) {
			continue
		}
		var srvRows []Row
		for _, p := range policies {
			t := p.Spec.TargetRef
			if t.Namespace != "" && t.Namespace != ns {
				continue
			}
			if t.Kind == "Server" && groupIs(t.Group, api.Group) && t.Name == srv.Name {
				srvRows = append(srvRows, Row{Route: "*", Server: srv.Name, AuthorizationPolicy: p.Name})
				continue
			}
			for _, r := range routes {
				if t.Kind == r.kind && groupIs(t.Group, r.group) && t.Name == r.name && slices.Contains(r.parents, srv.Name) {
					srvRows = append(srvRows, Row{Route: r.name, Server: srv.Name, AuthorizationPolicy: p.Name})
				}
			}
		}
		for _, s := range sazs {
			if selectsServer(s, srv) {
				srvRows = append(srvRows, Row{Route: "*", Server: srv.Name, ServerAuthorization: s.Name})
			}
		}
		// By route, AuthorizationPolicies before ServerAuthorizations, then by name.
		slices.SortStableFunc(srvRows, func(a, b Row) int {
			if c := strings.Compare(a.Route, b.Route); c != 0 {
				return c
			}
			if (a.AuthorizationPolicy == "") != (b.AuthorizationPolicy == "") {
				if a.AuthorizationPolicy != "" {
					return -1
				}
				return 1
			}
			return strings.Compare(a.AuthorizationPolicy+a.ServerAuthorization, b.AuthorizationPolicy+b.ServerAuthorization)
		})
		rows = append(rows, srvRows...)
	}
	var defaults []string
	for _, p := range pods {
		if d := DefaultPolicy(&p); d != "" && !slices.Contains(defaults, d) {
			defaults = append(defaults, d)
		}
	}
	slices.Sort(defaults)
	for _, d := range defaults {
		rows = append(rows,
			Row{Route: "default", Server: "default:" + d, AuthorizationPolicy: "default/" + d},
			Row{Route: "probe", Server: "default:" + d, AuthorizationPolicy: "default/probe"})
	}
	return rows, nil
}

// DefaultPolicy is the default inbound policy the pod's proxy uses (its
// LINKERD2_PROXY_INBOUND_DEFAULT_POLICY), or "" for a pod without a proxy.
func DefaultPolicy(p *corev1.Pod) string {
	for _, cs := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name != "linkerd-proxy" {
				continue
			}
			for _, e := range c.Env {
				if e.Name == DefaultPolicyEnv && e.Value != "" {
					return e.Value
				}
			}
			return "all-unauthenticated"
		}
	}
	return ""
}

// WriteTable prints rows under ROUTE SERVER AUTHORIZATION_POLICY SERVER_AUTHORIZATION.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tSERVER\tAUTHORIZATION_POLICY\tSERVER_AUTHORIZATION")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Route, r.Server, r.AuthorizationPolicy, r.ServerAuthorization)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the authorization table: %w", err)
	}
	return nil
}

func groupIs(got, want string) bool { return got == want || got == "" && want == api.Group }

// selectsAny reports whether the Server's pod selector matches any of pods (which also
// need the Server's port: a numbered port any container declares or not, a named port
// one of the pod's containers declares).
func selectsAny(srv api.Server, pods []corev1.Pod) bool {
	if srv.Spec.PodSelector == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(srv.Spec.PodSelector)
	if err != nil {
		return false
	}
	for _, p := range pods {
		if sel.Matches(labels.Set(p.Labels)) && hasPort(&p, srv) {
			return true
		}
	}
	return false
}

func hasPort(p *corev1.Pod, srv api.Server) bool {
	if srv.Spec.Port.Type == 0 { // a number: any port of the pod may be served
		return true
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == srv.Spec.Port.StrVal {
				return true
			}
		}
	}
	return false
}

// selectsServer reports whether the ServerAuthorization selects srv: by name, else by
// its label selector (an empty one selecting every Server).
func selectsServer(s api.ServerAuthorization, srv api.Server) bool {
	if s.Spec.Server.Name != "" {
		return s.Spec.Server.Name == srv.Name
	}
	if s.Spec.Server.Selector == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(s.Spec.Server.Selector)
	return err == nil && sel.Matches(labels.Set(srv.Labels))
}

// listInto lists gvr in ns and converts the items into *out (a slice of typed objects).
func listInto[T any](ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns string, out *[]T) error {
	l, err := dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing %s in namespace %s: %w", gvr.GroupResource(), ns, err)
	}
	for _, item := range l.Items {
		var v T
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(item.Object, &v); err != nil {
			return fmt.Errorf("%s %s/%s: %w", gvr.GroupResource(), ns, item.GetName(), err)
		}
		*out = append(*out, v)
	}
	return nil
}

// isMissingResource reports whether err says the resource type is not served (its CRD
// is not installed).
func isMissingResource(err error) bool {
	return apierrors.IsNotFound(err) || meta.IsNoMatchError(err)
}
