package check

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/l5d-go/l5d/pkg/inject"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// Prometheus is what the viz checks ask of the extension's Prometheus.
type Prometheus interface {
	// Ready fails unless Prometheus is up and ready to serve queries.
	Ready(ctx context.Context) error
	// ScrapedProxies returns "namespace/pod" of every proxy scraped successfully in
	// namespace ns (all when empty).
	ScrapedProxies(ctx context.Context, ns string) (map[string]bool, error)
}

// VizOptions select and parameterise the checks of `linkerd viz check`.
type VizOptions struct {
	// Namespace is the control plane's namespace.
	Namespace string
	// Prometheus returns a client of the Prometheus in the extension's namespace vizNS.
	Prometheus func(vizNS string) (Prometheus, error)
	// Proxy adds the linkerd-viz-data-plane checks for the meshed pods of
	// DataPlaneNamespace (all namespaces when empty).
	Proxy              bool
	DataPlaneNamespace string
	// CLIVersion is compared with the extension's proxies' versions.
	CLIVersion string
}

// Names of the extension's label and objects the checks look for.
const (
	vizSelector         = "linkerd.io/extension=viz"
	annExternalProm     = "viz.linkerd.io/external-prometheus"
	annDefaultPolicy    = "config.linkerd.io/default-inbound-policy"
	proxyAdminPortName  = "linkerd-admin"
	proxyAdminPort      = 4191
	vizHintAllowScrapes = "linkerd viz allow-scrapes --namespace %s | kubectl apply -f -"
)

// RunViz runs the checks of `linkerd viz check`: Linkerd's linkerd-viz category and, with
// o.Proxy, linkerd-viz-data-plane.
func RunViz(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, o VizOptions) Report {
	v := &vizRunner{runner: runner{kube: kube, dyn: dyn, o: Options{Namespace: o.Namespace, CLIVersion: o.CLIVersion}}, vo: o}
	groups := []func() group{v.viz}
	if o.Proxy {
		groups = append(groups, v.vizDataPlane)
	}
	return runGroups(ctx, groups)
}

type vizRunner struct {
	runner
	vo VizOptions
	// found by the first checks
	ns       string
	external string // URL of the user's Prometheus, when the extension uses one
	prom     Prometheus
}

// ready reports whether p's Ready condition is true.
func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// proxyReady reports whether p's linkerd-proxy container (classic or native sidecar) is ready.
func proxyReady(p *corev1.Pod) bool {
	for _, st := range append(append([]corev1.ContainerStatus{}, p.Status.ContainerStatuses...), p.Status.InitContainerStatuses...) {
		if st.Name == inject.ProxyContainerName && st.Ready {
			return true
		}
	}
	return false
}

func (v *vizRunner) pods(ctx context.Context) ([]corev1.Pod, error) {
	l, err := v.kube.CoreV1().Pods(v.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p)
		}
	}
	return out, nil
}

// podsInjected fails when a pod of the extension's namespace has no proxy.
func (v *vizRunner) podsInjected(ctx context.Context) error {
	pods, err := v.pods(ctx)
	if err != nil {
		return err
	}
	var bare []string
	for _, p := range pods {
		if !Meshed(&p) {
			bare = append(bare, p.Name)
		}
	}
	if len(bare) > 0 {
		return fmt.Errorf("could not find proxy container for %s pod(s)", strings.Join(bare, ", "))
	}
	return nil
}

// proxiesHealthy fails when a proxy of the extension's namespace is not ready.
func (v *vizRunner) proxiesHealthy(ctx context.Context) error {
	pods, err := v.pods(ctx)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if Meshed(&p) && !proxyReady(&p) {
			//lint:ignore ST1005 the wording is Linkerd's check output
			return fmt.Errorf("The \"%s\" pod's proxy is not ready", p.Name)
		}
	}
	return nil
}

// proxyVersions fails when a proxy of the extension's namespace is not the CLI's version.
func (v *vizRunner) proxyVersions(ctx context.Context) error {
	pods, err := v.pods(ctx)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if ver := p.Annotations["linkerd.io/proxy-version"]; Meshed(&p) && ver != v.vo.CLIVersion {
			return fmt.Errorf("%s running %s but cli running %s", p.Name, ver, v.vo.CLIVersion)
		}
	}
	return nil
}

func (v *vizRunner) viz() group {
	rbac := func(res string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: res}
	}
	components := func() []string {
		if v.external != "" {
			return []string{"metrics-api"}
		}
		return []string{"metrics-api", "prometheus"}
	}
	rbacExists := func(res string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			for _, c := range components() {
				name := "linkerd-" + v.ns + "-" + c
				if _, err := v.dyn.Resource(rbac(res)).Get(ctx, name, metav1.GetOptions{}); err != nil {
					return fmt.Errorf("missing %s: %s", res, name)
				}
			}
			return nil
		}
	}
	return group{"linkerd-viz", []check{
		{name: "linkerd-viz Namespace exists", hint: "l5d-viz-ns-exists", fatal: true, run: func(ctx context.Context) error {
			if v.kube == nil {
				return errors.New("no Kubernetes client")
			}
			l, err := v.kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: vizSelector})
			if err != nil {
				return err
			}
			if len(l.Items) == 0 {
				return errors.New("could not find the linkerd-viz extension (no namespace labelled linkerd.io/extension=viz): install it with `linkerd viz install | kubectl apply -f -`")
			}
			v.ns, v.external = l.Items[0].Name, l.Items[0].Annotations[annExternalProm]
			return nil
		}},
		{name: "can initialize the client", hint: "l5d-viz-k8s-api", fatal: true, run: func(context.Context) error {
			if v.dyn == nil {
				return errors.New("no Kubernetes client")
			}
			if v.external != "" {
				return nil
			}
			p, err := v.vo.Prometheus(v.ns)
			v.prom = p
			return err
		}},
		{name: "linkerd-viz ClusterRoles exist", hint: "l5d-viz-cr-exists", run: rbacExists("clusterroles")},
		{name: "linkerd-viz ClusterRoleBindings exist", hint: "l5d-viz-crb-exists", run: rbacExists("clusterrolebindings")},
		{name: "linkerd-viz pods are injected", hint: "l5d-viz-pods-injection", run: v.podsInjected},
		{name: "viz extension pods are running", hint: "l5d-viz-pods-running", run: func(ctx context.Context) error {
			pods, err := v.pods(ctx)
			if err != nil {
				return err
			}
			for _, c := range components() {
				running := false
				for _, p := range pods {
					if p.Labels["component"] == c && ready(&p) {
						running = true
					}
				}
				if !running {
					//lint:ignore ST1005 the wording is Linkerd's check output
					return fmt.Errorf("No running pods for \"%s\"", c)
				}
			}
			return nil
		}},
		{name: "viz extension proxies are healthy", hint: "l5d-viz-proxy-healthy", run: v.proxiesHealthy},
		{name: "viz extension proxies and cli versions match", hint: "l5d-viz-proxy-cli-version", warning: true, run: v.proxyVersions},
		{name: "prometheus is installed and configured correctly", hint: "l5d-viz-prometheus", run: func(ctx context.Context) error {
			if v.external != "" {
				return nil // the user's own Prometheus, which the CLI does not reach
			}
			if _, err := v.kube.CoreV1().ConfigMaps(v.ns).Get(ctx, "prometheus-config", metav1.GetOptions{}); err != nil {
				return fmt.Errorf("prometheus configuration: %w", err)
			}
			return v.prom.Ready(ctx)
		}},
		{name: "viz extension self-check", hint: "l5d-viz-metrics-api", run: func(ctx context.Context) error {
			pods, err := v.pods(ctx)
			if err != nil {
				return err
			}
			for _, p := range pods {
				if p.Labels["component"] != "metrics-api" || !ready(&p) {
					continue
				}
				if _, err := v.kube.CoreV1().Pods(v.ns).ProxyGet("http", p.Name, "9995", "/ready", nil).DoRaw(ctx); err != nil {
					return fmt.Errorf("metrics-api %s is not ready: %w", p.Name, err)
				}
				return nil
			}
			return errors.New("no ready metrics-api pod")
		}},
	}}
}

func (v *vizRunner) vizDataPlane() group {
	ns := v.vo.DataPlaneNamespace
	var pods []corev1.Pod
	return group{"linkerd-viz-data-plane", append(v.dataPlaneNamespace(ns),
		check{name: "prometheus is authorized to scrape data plane pods", hint: "l5d-viz-data-plane-prom-authz", warning: true, run: func(ctx context.Context) error {
			l, err := v.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			pods = pods[:0]
			for _, p := range l.Items {
				if Meshed(&p) && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
					pods = append(pods, p)
				}
			}
			denied, err := v.unscrapable(ctx, pods)
			if err != nil {
				return err
			}
			if len(denied) == 0 {
				return nil
			}
			nss := map[string]bool{}
			for _, d := range denied {
				nss[strings.SplitN(d, "/", 2)[0]] = true
			}
			var advice []string
			for n := range nss {
				advice = append(advice, fmt.Sprintf(vizHintAllowScrapes, n))
			}
			sort.Strings(advice)
			return fmt.Errorf("prometheus may not be authorized to scrape the following pods (their default inbound policy is deny and no Server admits scrapes of %s):\n\t* %s\n    consider running: %s",
				proxyAdminPortName, strings.Join(denied, "\n\t* "), strings.Join(advice, "; "))
		}},
		// The user's own Prometheus (prometheusUrl) is not reachable through the API
		// server: the check can only warn that it did not look.
		check{name: "data plane proxy metrics are present in Prometheus", hint: "l5d-data-plane-prom", warning: v.external != "", run: func(ctx context.Context) error {
			if v.prom == nil {
				return fmt.Errorf("the extension uses the Prometheus at %s, which the CLI does not query", v.external)
			}
			up, err := v.prom.ScrapedProxies(ctx, ns)
			if err != nil {
				return err
			}
			var missing []string
			for _, p := range pods {
				if k := p.Namespace + "/" + p.Name; !up[k] && proxyReady(&p) {
					missing = append(missing, k)
				}
			}
			if len(missing) > 0 {
				sort.Strings(missing)
				//lint:ignore ST1005 the wording is Linkerd's check output
				return fmt.Errorf("Data plane metrics not found for %s.", strings.Join(missing, ", "))
			}
			return nil
		}},
	)}
}

var (
	serversGVR  = schema.GroupVersionResource{Group: "policy.linkerd.io", Version: "v1beta1", Resource: "servers"}
	authzGVR    = schema.GroupVersionResource{Group: "policy.linkerd.io", Version: "v1alpha1", Resource: "authorizationpolicies"}
	httpRoutes  = schema.GroupVersionResource{Group: "policy.linkerd.io", Version: "v1beta3", Resource: "httproutes"}
	defaultDeny = "deny"
)

// unscrapable returns "ns/pod" of the pods whose default inbound policy is deny and whose
// namespace has no Server on the proxy admin port with an AuthorizationPolicy (on the Server
// or on an HTTPRoute of it): Prometheus' scrapes of them would be refused.
func (v *vizRunner) unscrapable(ctx context.Context, pods []corev1.Pod) ([]string, error) {
	clusterDefault := ""
	if cm, err := v.kube.CoreV1().ConfigMaps(v.vo.Namespace).Get(ctx, "linkerd-config", metav1.GetOptions{}); err == nil {
		var vals struct {
			Proxy struct {
				DefaultInboundPolicy string `json:"defaultInboundPolicy"`
			} `json:"proxy"`
		}
		if yaml.Unmarshal([]byte(cm.Data["values"]), &vals) == nil {
			clusterDefault = vals.Proxy.DefaultInboundPolicy
		}
	}
	nsPolicy := map[string]string{}
	admitted := map[string]bool{}
	var out []string
	for _, p := range pods {
		pol, ok := p.Annotations[annDefaultPolicy]
		if !ok {
			if _, seen := nsPolicy[p.Namespace]; !seen {
				nsPolicy[p.Namespace] = clusterDefault
				if n, err := v.kube.CoreV1().Namespaces().Get(ctx, p.Namespace, metav1.GetOptions{}); err == nil {
					if a, ok := n.Annotations[annDefaultPolicy]; ok {
						nsPolicy[p.Namespace] = a
					}
				}
			}
			pol = nsPolicy[p.Namespace]
		}
		if pol != defaultDeny {
			continue
		}
		ok, seen := admitted[p.Namespace]
		if !seen {
			var err error
			if ok, err = v.scrapesAdmitted(ctx, p.Namespace); err != nil {
				return nil, err
			}
			admitted[p.Namespace] = ok
		}
		if !ok {
			out = append(out, p.Namespace+"/"+p.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// scrapesAdmitted reports whether namespace ns has a Server on the proxy admin port that an
// AuthorizationPolicy targets, directly or through an HTTPRoute.
func (v *vizRunner) scrapesAdmitted(ctx context.Context, ns string) (bool, error) {
	list := func(gvr schema.GroupVersionResource) ([]unstructured.Unstructured, error) {
		l, err := v.dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s in %s: %w", gvr.Resource, ns, err)
		}
		return l.Items, nil
	}
	servers, err := list(serversGVR)
	if err != nil {
		return false, err
	}
	admin := map[string]bool{}
	for _, s := range servers {
		port, _, _ := unstructured.NestedFieldNoCopy(s.Object, "spec", "port")
		switch p := port.(type) {
		case string:
			admin[s.GetName()] = p == proxyAdminPortName
		case int64:
			admin[s.GetName()] = p == proxyAdminPort
		}
	}
	routes, err := list(httpRoutes)
	if err != nil {
		return false, err
	}
	routeOf := map[string]bool{}
	for _, r := range routes {
		refs, _, _ := unstructured.NestedSlice(r.Object, "spec", "parentRefs")
		for _, ref := range refs {
			m, _ := ref.(map[string]any)
			if m["kind"] == "Server" && admin[fmt.Sprint(m["name"])] {
				routeOf[r.GetName()] = true
			}
		}
	}
	policies, err := list(authzGVR)
	if err != nil {
		return false, err
	}
	for _, ap := range policies {
		kind, _, _ := unstructured.NestedString(ap.Object, "spec", "targetRef", "kind")
		name, _, _ := unstructured.NestedString(ap.Object, "spec", "targetRef", "name")
		if (kind == "Server" && admin[name]) || (kind == "HTTPRoute" && routeOf[name]) {
			return true, nil
		}
	}
	return false, nil
}
