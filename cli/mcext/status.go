package mcext

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/l5d-go/l5d/cli/podconn"
	"github.com/l5d-go/l5d/cli/vizext"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Links lists the Links of the source cluster in namespace ns (every namespace when
// empty). A cluster without the Link CRD has none.
func Links(ctx context.Context, dyn dynamic.Interface, ns string) ([]mc.Link, error) {
	l, err := dyn.Resource(mc.Links).Namespace(ns).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing Links: %w", err)
	}
	var out []mc.Link
	for _, u := range l.Items {
		var link mc.Link
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &link); err != nil {
			return nil, fmt.Errorf("link %s/%s: %w", u.GetNamespace(), u.GetName(), err)
		}
		out = append(out, link)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// linkKinds are the kinds of the objects of one link (Link, its Secret, its service
// mirror's objects) and of its mirrors.
var linkKinds = []struct {
	gvr  schema.GroupVersionResource
	kind string
}{
	{mc.Links, mc.Kind},
	{schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, "Secret"},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "Deployment"},
	{schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, "ServiceAccount"},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, "Role"},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}, "RoleBinding"},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, "ClusterRole"},
	{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, "ClusterRoleBinding"},
	{schema.GroupVersionResource{Version: "v1", Resource: "services"}, "Service"},
	{schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}, "Endpoints"},
}

// UnlinkRefs lists what `linkerd multicluster unlink` deletes for cluster name: the
// objects labelled mirror.linkerd.io/cluster-name=<name> (the Link, its Secret, its
// service mirror and the mirrors it made) and the destination controller's Secret
// (multicluster.linkerd.io/cluster-name=<name>). It fails when there is no such Link.
func UnlinkRefs(ctx context.Context, dyn dynamic.Interface, ns, name string) ([]Ref, error) {
	ns = Namespace(ns)
	if _, err := dyn.Resource(mc.Links).Namespace(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("no Link %s/%s in this cluster (`kubectl get links -A` lists them)", ns, name)
		}
		return nil, fmt.Errorf("reading Link %s/%s: %w", ns, name, err)
	}
	sel := labels.SelectorFromSet(labels.Set{mc.LabelClusterName: name}).String()
	var refs []Ref
	for _, k := range linkKinds {
		l, err := dyn.Resource(k.gvr).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", k.gvr.Resource, err)
		}
		for _, o := range l.Items {
			if !ownedByLink(k.kind, &o, ns) {
				continue
			}
			refs = append(refs, Ref{APIVersion: k.gvr.GroupVersion().String(), Kind: k.kind, Namespace: o.GetNamespace(), Name: o.GetName()})
		}
	}
	// The destination controller's copy of the credentials, in the control plane's
	// namespace.
	dsel := labels.SelectorFromSet(labels.Set{mc.LabelDestinationCluster: name}).String()
	secrets, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).List(ctx, metav1.ListOptions{LabelSelector: dsel})
	if err != nil {
		return nil, fmt.Errorf("listing the destination controller's credentials of %s: %w", name, err)
	}
	for _, o := range secrets.Items {
		refs = append(refs, Ref{APIVersion: "v1", Kind: "Secret", Namespace: o.GetNamespace(), Name: o.GetName()})
	}
	return refs, nil
}

// ownedByLink keeps the objects of the extension's namespace (and cluster-scoped ones)
// the extension made, and the mirrors the service mirror made anywhere.
func ownedByLink(kind string, o *unstructured.Unstructured, ns string) bool {
	if kind == "Service" || kind == "Endpoints" {
		return o.GetLabels()[mc.LabelMirroredService] == "true"
	}
	return o.GetNamespace() == "" || o.GetNamespace() == ns
}

// Installed lists the extension's objects for `linkerd multicluster uninstall`.
func Installed(ctx context.Context, dyn dynamic.Interface) ([]Ref, error) {
	refs, err := vizext.InstalledBy(ctx, dyn, Selector)
	if err != nil {
		return nil, err
	}
	// The Link CRD goes last, with the namespace.
	crd := Ref{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition", Name: mc.Resource + "." + mc.Group}
	if _, err := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
		Get(ctx, crd.Name, metav1.GetOptions{}); err == nil {
		refs = append(refs, crd)
	}
	return refs, nil
}

// Gateway is the state of one linked cluster's gateway, as its service mirror sees it.
type Gateway struct {
	Cluster string
	// Alive is nil when the service mirror could not be asked.
	Alive *bool
	// Mirrored is the number of Services mirrored from the cluster.
	Mirrored int
	// Latency is the mean latency of the successful probes (0 when none).
	Latency time.Duration
	// Err says why the service mirror could not be asked.
	Err error
}

// Gateways reports, for each Link, its gateway's state read from its service mirror's
// metrics (gateway_alive, gateway_probe_latency_ms through the API server's pods/proxy)
// and the number of mirrored Services in the cluster.
func Gateways(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, ns string) ([]Gateway, error) {
	links, err := Links(ctx, dyn, Namespace(ns))
	if err != nil {
		return nil, err
	}
	var out []Gateway
	for _, l := range links {
		if l.Spec.GatewayAddress == "" {
			continue // pod to pod: no gateway
		}
		cluster := l.Spec.TargetClusterName
		g := Gateway{Cluster: cluster}
		svcs, err := kube.CoreV1().Services("").List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{
			mc.LabelMirroredService: "true", mc.LabelClusterName: cluster}).String()})
		if err != nil {
			return nil, fmt.Errorf("listing the services mirrored from %s: %w", cluster, err)
		}
		for _, s := range svcs.Items {
			if s.Labels[mc.LabelRemoteDiscovery] == "" {
				g.Mirrored++
			}
		}
		g.Alive, g.Latency, g.Err = probeState(ctx, kube, l.Namespace, l.Name, cluster)
		out = append(out, g)
	}
	return out, nil
}

func probeState(ctx context.Context, kube kubernetes.Interface, ns, link, cluster string) (*bool, time.Duration, error) {
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{
		"component": mc.ServiceMirrorComponent, mc.LabelClusterName: link}).String()})
	if err != nil {
		return nil, 0, fmt.Errorf("listing the service mirror pods of %s: %w", link, err)
	}
	var lastErr error = fmt.Errorf("no running service mirror pod for link %s in %s", link, ns)
	for _, p := range pods.Items {
		if p.Status.Phase != "Running" {
			continue
		}
		body, err := podconn.Get(ctx, kube, ns, p.Name, mc.AdminPort, "metrics")
		if err != nil {
			lastErr = err
			continue
		}
		return parseProbeMetrics(body, cluster)
	}
	return nil, 0, lastErr
}

// parseProbeMetrics reads gateway_alive and the mean of gateway_probe_latency_ms for
// cluster from a Prometheus text exposition.
func parseProbeMetrics(body []byte, cluster string) (*bool, time.Duration, error) {
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("service mirror metrics: %w", err)
	}
	var alive *bool
	var latency time.Duration
	for _, m := range fams["gateway_alive"].GetMetric() {
		if labelOf(m.GetLabel(), "target_cluster_name") == cluster {
			v := m.GetGauge().GetValue() == 1
			alive = &v
		}
	}
	for _, m := range fams["gateway_probe_latency_ms"].GetMetric() {
		if labelOf(m.GetLabel(), "target_cluster_name") == cluster {
			h := m.GetHistogram()
			if h.GetSampleCount() > 0 {
				ms := h.GetSampleSum() / float64(h.GetSampleCount())
				latency = time.Duration(math.Round(ms * float64(time.Millisecond)))
			}
		}
	}
	if alive == nil {
		return nil, 0, fmt.Errorf("the service mirror reports no gateway_alive for %s", cluster)
	}
	return alive, latency, nil
}

func labelOf(ls []*dto.LabelPair, name string) string {
	for _, l := range ls {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
