package check

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/l5d-go/l5d/pkg/proxyconf"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// errSkip from a check leaves it out of the report: it does not apply to this cluster (an
// HA check on a non-HA install, a control plane without proxies).
var errSkip = errors.New("check does not apply")

// AllowedClockSkew is how far a node's last heartbeat may be from this machine's clock:
// the kubelet's 5-minute heartbeat interval plus 10 s of TLS allowance, as in Linkerd.
const AllowedClockSkew = 5*time.Minute + 10*time.Second

// controlPlaneComponents are the Deployments of the control plane.
var controlPlaneComponents = []string{"linkerd-identity", "linkerd-destination", "linkerd-proxy-injector"}

// clockSkew compares each node's latest Ready heartbeat with this machine's clock.
func (r *runner) clockSkew(ctx context.Context) error {
	nodes, err := r.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	now := r.o.Now()
	var skewed []string
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type != corev1.NodeReady || c.LastHeartbeatTime.IsZero() {
				continue
			}
			if d := now.Sub(c.LastHeartbeatTime.Time); d > AllowedClockSkew || d < -AllowedClockSkew {
				skewed = append(skewed, fmt.Sprintf("%s (%s)", n.Name, d.Round(time.Second)))
			}
		}
	}
	if len(skewed) > 0 {
		return fmt.Errorf("clock skew detected for node(s): %s", strings.Join(skewed, ", "))
	}
	return nil
}

// linkerdVersion is the linkerd-version category: the CLI against --expected-version.
func (r *runner) linkerdVersion() group {
	return group{"linkerd-version", []check{
		{name: "can determine the latest version", hint: "l5d-version-latest", warning: true, run: func(context.Context) error {
			if r.o.ExpectedVersion == "" {
				return errors.New("no --expected-version given: l5d has no version-check service, so the latest version is unknown")
			}
			return nil
		}},
		{name: "cli is up-to-date", hint: "l5d-version-cli", warning: true, run: func(context.Context) error {
			return r.upToDate(r.o.CLIVersion)
		}},
	}}
}

// upToDate compares a running version with --expected-version (skipped without one).
func (r *runner) upToDate(running string) error {
	if r.o.ExpectedVersion == "" {
		return errSkip
	}
	if running != r.o.ExpectedVersion {
		return fmt.Errorf("is running version %s but the latest version is %s", running, r.o.ExpectedVersion)
	}
	return nil
}

// proxiesUpToDate lists the pods whose proxy is not at --expected-version.
func (r *runner) proxiesUpToDate(pods []corev1.Pod) error {
	if r.o.ExpectedVersion == "" {
		return errSkip
	}
	var old []string
	for _, p := range pods {
		if v := p.Annotations["linkerd.io/proxy-version"]; v != r.o.ExpectedVersion {
			old = append(old, fmt.Sprintf("\t* %s (%s)", p.Name, v))
		}
	}
	if len(old) > 0 {
		return fmt.Errorf("some proxies are not running the current version:\n%s", strings.Join(old, "\n"))
	}
	return nil
}

// controlPlaneProxy is linkerd-control-plane-proxy: the proxies of control-plane pods. l5d's
// own components carry no proxy, so the category appears only when some do.
func (r *runner) controlPlaneProxy() group {
	var pods []corev1.Pod
	return group{"linkerd-control-plane-proxy", []check{
		{name: "control plane proxies are healthy", hint: "l5d-cp-proxy-healthy", run: func(ctx context.Context) error {
			l, err := r.kube.CoreV1().Pods(r.o.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, p := range l.Items {
				if Meshed(&p) {
					pods = append(pods, p)
				}
			}
			if len(pods) == 0 {
				return errSkip
			}
			for _, p := range pods {
				if !proxyReady(&p) {
					//lint:ignore ST1005 the wording is Linkerd's check output
					return fmt.Errorf("The \"%s\" pod's proxy is not ready", p.Name)
				}
			}
			return nil
		}},
		{name: "control plane proxies are up-to-date", hint: "l5d-cp-proxy-version", warning: true, run: func(context.Context) error {
			if len(pods) == 0 {
				return errSkip
			}
			return r.proxiesUpToDate(pods)
		}},
		{name: "control plane proxies and cli versions match", hint: "l5d-cp-proxy-cli-version", warning: true, run: func(context.Context) error {
			if len(pods) == 0 {
				return errSkip
			}
			for _, p := range pods {
				if v := p.Annotations["linkerd.io/proxy-version"]; v != r.o.CLIVersion {
					return fmt.Errorf("%s running %s but cli running %s", p.Name, v, r.o.CLIVersion)
				}
			}
			return nil
		}},
	}}
}

// ha is linkerd-ha-checks, run for HA installs only (webhookFailurePolicy Fail).
func (r *runner) ha() group {
	return group{"linkerd-ha-checks", []check{
		{name: "pod injection disabled on kube-system", hint: "l5d-injection-disabled", warning: true, run: func(ctx context.Context) error {
			if !r.haInstall {
				return errSkip
			}
			ns, err := r.kube.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if ns.Labels[proxyconf.LabelAdmissionWebhooks] != "disabled" {
				return fmt.Errorf("kube-system namespace needs to have the label %s: disabled if injector webhook failure policy is Fail", proxyconf.LabelAdmissionWebhooks)
			}
			return nil
		}},
		{name: "multiple replicas of control plane pods", hint: "l5d-control-plane-replicas", warning: true, run: func(ctx context.Context) error {
			if !r.haInstall {
				return errSkip
			}
			var few []string
			for _, c := range controlPlaneComponents {
				d, err := r.kube.AppsV1().Deployments(r.o.Namespace).Get(ctx, c, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if d.Status.AvailableReplicas <= 1 {
					few = append(few, c)
				}
			}
			if len(few) > 0 {
				return fmt.Errorf("not enough replicas available for %v", few)
			}
			return nil
		}},
	}}
}

// identityDataPlane is linkerd-identity-data-plane: every meshed pod's proxy trusts the
// control plane's current trust anchors.
func (r *runner) identityDataPlane() group {
	return group{"linkerd-identity-data-plane", []check{
		{name: "data plane proxies certificate match CA", hint: "l5d-identity-data-plane-proxies-certs-match-ca", warning: true, run: func(ctx context.Context) error {
			cm, err := r.kube.CoreV1().ConfigMaps(r.o.Namespace).Get(ctx, "linkerd-identity-trust-roots", metav1.GetOptions{})
			if err != nil {
				return err
			}
			want := strings.TrimSpace(cm.Data["ca-bundle.crt"])
			l, err := r.kube.CoreV1().Pods(r.o.DataPlaneNamespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			var stale []string
			for _, p := range l.Items {
				if anchors, ok := proxyEnv(&p, proxyconf.EnvIdentityTrustAnchors); ok && strings.TrimSpace(anchors) != want {
					stale = append(stale, fmt.Sprintf("\t* %s/%s", p.Namespace, p.Name))
				}
			}
			if len(stale) > 0 {
				sum := sha256.Sum256([]byte(want))
				//lint:ignore ST1005 Linkerd's check prints this message as it is
				return fmt.Errorf("Some pods do not have the current trust bundle (sha256 %s) and must be restarted:\n%s",
					hex.EncodeToString(sum[:8]), strings.Join(stale, "\n"))
			}
			return nil
		}},
	}}
}

// proxyEnv returns the value of a variable of the pod's linkerd-proxy container.
func proxyEnv(p *corev1.Pod, name string) (string, bool) {
	for _, cs := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name != "linkerd-proxy" {
				continue
			}
			for _, e := range c.Env {
				if e.Name == name {
					return e.Value, true
				}
			}
		}
	}
	return "", false
}

// opaquePorts is linkerd-opaque-ports-definition: a port a meshed pod marks opaque is
// marked opaque on the Services that target it too, or clients through the Service would
// run protocol detection on it.
func (r *runner) opaquePorts() group {
	return group{"linkerd-opaque-ports-definition", []check{
		{name: "opaque ports are properly annotated", hint: "linkerd-opaque-ports-definition", warning: true, run: func(ctx context.Context) error {
			ns := r.o.DataPlaneNamespace
			svcs, err := r.kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			pods, err := r.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			var bad []string
			for _, s := range svcs.Items {
				if len(s.Spec.Selector) == 0 {
					continue
				}
				sel := labels.SelectorFromSet(s.Spec.Selector)
				svcOpaque := portSet(s.Annotations[proxyconf.AnnOpaquePorts])
				for _, p := range pods.Items {
					if p.Namespace != s.Namespace || !sel.Matches(labels.Set(p.Labels)) || !Meshed(&p) {
						continue
					}
					podOpaque := portSet(p.Annotations[proxyconf.AnnOpaquePorts])
					for _, sp := range s.Spec.Ports {
						target := targetPort(&p, sp)
						if target == 0 || !podOpaque[target] || svcOpaque[sp.Port] {
							continue
						}
						bad = append(bad, fmt.Sprintf("\t* service %s/%s targets the opaque port %d of pod %s; add %d to its %s annotation",
							s.Namespace, s.Name, target, p.Name, sp.Port, proxyconf.AnnOpaquePorts))
					}
				}
			}
			if len(bad) > 0 {
				sort.Strings(bad)
				return errors.New(strings.Join(bad, "\n"))
			}
			return nil
		}},
	}}
}

// portSet reads a port list annotation ("25,3306,8000-8002"); bad items are ignored (the
// injector and policy controller report them).
func portSet(v string) map[int32]bool {
	set := map[int32]bool{}
	for item := range strings.SplitSeq(v, ",") {
		var lo, hi int32
		item = strings.TrimSpace(item)
		if n, _ := fmt.Sscanf(item, "%d-%d", &lo, &hi); n == 2 && lo <= hi && hi-lo < 65536 {
			for p := lo; p <= hi; p++ {
				set[p] = true
			}
		} else if n == 1 {
			set[lo] = true
		}
	}
	return set
}

// targetPort resolves a Service port's target on a pod (0 when the named port is absent).
func targetPort(p *corev1.Pod, sp corev1.ServicePort) int32 {
	if sp.TargetPort.StrVal == "" {
		if sp.TargetPort.IntVal != 0 {
			return sp.TargetPort.IntVal
		}
		return sp.Port
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == sp.TargetPort.StrVal {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

// misplacedLabels reports Linkerd configuration written as labels, where it has no effect.
func misplacedLabels(kind string, objs []metav1.ObjectMeta) error {
	var bad []string
	for _, o := range objs {
		for k := range o.Labels {
			if k == proxyconf.LabelAdmissionWebhooks {
				continue
			}
			if strings.HasPrefix(k, proxyconf.Prefix) || strings.HasPrefix(k, proxyconf.PrefixAlpha) ||
				strings.HasPrefix(k, proxyconf.PrefixBeta) || k == "linkerd.io/inject" {
				bad = append(bad, fmt.Sprintf("\t* %s/%s\n\t\t%s", o.Namespace, o.Name, k))
			}
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		//lint:ignore ST1005 Linkerd's check prints this message as it is
		return fmt.Errorf("Some labels on data plane %s should be annotations:\n%s", kind, strings.Join(bad, "\n"))
	}
	return nil
}

// podOnlyServiceAnnotations reports proxy configuration annotations on Services, where only
// opaque-ports has an effect.
func podOnlyServiceAnnotations(svcs []corev1.Service) error {
	var bad []string
	for _, s := range svcs {
		for k := range s.Annotations {
			if k != proxyconf.AnnOpaquePorts && (strings.HasPrefix(k, proxyconf.Prefix) || strings.HasPrefix(k, proxyconf.PrefixAlpha)) {
				bad = append(bad, fmt.Sprintf("\t* %s/%s\n\t\t%s", s.Namespace, s.Name, k))
			}
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		//lint:ignore ST1005 Linkerd's check prints this message as it is
		return fmt.Errorf("Some annotations on data plane services should be on pods:\n%s", strings.Join(bad, "\n"))
	}
	return nil
}

// extensions is linkerd-extension-checks: each extension (namespace label
// linkerd.io/extension) is installed in one namespace only.
func (r *runner) extensions() group {
	return group{"linkerd-extension-checks", []check{
		{name: "namespace configuration for extensions", hint: "l5d-extension-namespaces", warning: true, run: func(ctx context.Context) error {
			l, err := r.kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "linkerd.io/extension"})
			if err != nil {
				return err
			}
			where := map[string][]string{}
			for _, ns := range l.Items {
				ext := ns.Labels["linkerd.io/extension"]
				where[ext] = append(where[ext], ns.Name)
			}
			var bad []string
			for ext, nss := range where {
				if len(nss) > 1 {
					sort.Strings(nss)
					bad = append(bad, fmt.Sprintf("\t* extension %s is labelled on namespaces %s", ext, strings.Join(nss, ", ")))
				}
			}
			if len(bad) > 0 {
				sort.Strings(bad)
				return fmt.Errorf("some extensions have more than one namespace; remove the label linkerd.io/extension from all but one:\n%s", strings.Join(bad, "\n"))
			}
			return nil
		}},
	}}
}

// linkerdCRDs are the CustomResourceDefinitions `linkerd install --crds` applies.
var linkerdCRDs = []string{
	"serviceprofiles.linkerd.io", "servers.policy.linkerd.io", "serverauthorizations.policy.linkerd.io",
	"authorizationpolicies.policy.linkerd.io", "meshtlsauthentications.policy.linkerd.io",
	"networkauthentications.policy.linkerd.io", "httproutes.policy.linkerd.io",
	"httplocalratelimitpolicies.policy.linkerd.io", "egressnetworks.policy.linkerd.io",
	"externalworkloads.workload.linkerd.io",
}

// GatewayAPICRDs are the Gateway API CustomResourceDefinitions the policy controller serves
// routes from. They are not part of `linkerd install --crds`: the cluster's Gateway API
// installation (its standard channel) provides them.
var GatewayAPICRDs = []string{"httproutes.gateway.networking.k8s.io", "grpcroutes.gateway.networking.k8s.io"}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// missingCRDs returns those of names the API server does not serve.
func missingCRDs(ctx context.Context, dyn dynamic.Interface, names []string) ([]string, error) {
	var missing []string
	for _, n := range names {
		if _, err := dyn.Resource(crdResource).Get(ctx, n, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			missing = append(missing, n)
		} else if err != nil {
			return nil, fmt.Errorf("reading CustomResourceDefinition %s: %w", n, err)
		}
	}
	return missing, nil
}

// MissingGatewayAPICRDs returns those of GatewayAPICRDs the cluster does not serve.
func MissingGatewayAPICRDs(ctx context.Context, dyn dynamic.Interface) ([]string, error) {
	return missingCRDs(ctx, dyn, GatewayAPICRDs)
}

// GatewayAPIError names the missing Gateway API CRDs, what is lost without them (the policy
// controller serves no Gateway API HTTPRoute or GRPCRoute; its own policy.linkerd.io
// HTTPRoute still works) and how to install them.
func GatewayAPIError(missing []string) error {
	return fmt.Errorf("the Gateway API CRDs are not installed (missing %s): Gateway API HTTPRoutes and GRPCRoutes will not be served until they are; "+
		"install the Gateway API's standard channel (https://gateway-api.sigs.k8s.io/guides/#installing-gateway-api)", strings.Join(missing, ", "))
}

// crdsExist checks every Linkerd CRD is installed (the linkerd-crd category and --crds).
func (r *runner) crdsExist(ctx context.Context) error {
	missing, err := missingCRDs(ctx, r.dyn, linkerdCRDs)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s; run `linkerd install --crds | kubectl apply -f -`", strings.Join(missing, ", "))
	}
	return nil
}

func (r *runner) crds() group {
	return group{"linkerd-crd", []check{
		{name: "control plane CustomResourceDefinitions exist", hint: "l5d-existence-crd", fatal: true, run: r.crdsExist},
		r.gatewayAPICheck(),
	}}
}

// gatewayAPICheck warns when the Gateway API CRDs are missing, as Linkerd's check does.
func (r *runner) gatewayAPICheck() check {
	return check{name: "Gateway API CRDs are installed", hint: "l5d-gateway-api-crds", warning: true, run: func(ctx context.Context) error {
		missing, err := MissingGatewayAPICRDs(ctx, r.dyn)
		if err != nil || len(missing) == 0 {
			return err
		}
		return GatewayAPIError(missing)
	}}
}

// clusterNetworks checks that the linkerd-config clusterNetworks cover every node's pod
// CIDRs, pod IP and Service cluster IP (warnings: traffic outside them gets no discovery
// or cluster policy).
func (r *runner) clusterNetworks() []check {
	nets := func() ([]netip.Prefix, error) {
		out, err := proxyconf.ParseNetworks(r.clusterNets)
		if err != nil {
			return nil, fmt.Errorf("clusterNetworks in linkerd-config: %w", err)
		}
		return out, nil
	}
	covered := func(ps []netip.Prefix, ip string) bool {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return true // nothing to judge
		}
		for _, p := range ps {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	report := func(what string, out []string) error {
		if len(out) == 0 {
			return nil
		}
		sort.Strings(out)
		return fmt.Errorf("the Linkerd clusterNetworks [%q] do not include %s %s", r.clusterNets, what, strings.Join(out, ", "))
	}
	return []check{
		{name: "cluster networks contains all node podCIDRs", hint: "l5d-cluster-networks-cidr", warning: true, run: func(ctx context.Context) error {
			ps, err := nets()
			if err != nil {
				return err
			}
			nodes, err := r.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			var out []string
			for _, n := range nodes.Items {
				for _, c := range n.Spec.PodCIDRs {
					p, err := netip.ParsePrefix(c)
					if err == nil && !covered(ps, p.Addr().String()) {
						out = append(out, fmt.Sprintf("%s(%s)", n.Name, c))
					}
				}
			}
			return report("all node podCIDRs", out)
		}},
		{name: "cluster networks contains all pods", hint: "l5d-cluster-networks-pods", warning: true, run: func(ctx context.Context) error {
			ps, err := nets()
			if err != nil {
				return err
			}
			pods, err := r.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			var out []string
			for _, p := range pods.Items {
				if p.Spec.HostNetwork {
					continue
				}
				for _, ip := range p.Status.PodIPs {
					if !covered(ps, ip.IP) {
						out = append(out, fmt.Sprintf("%s/%s(%s)", p.Namespace, p.Name, ip.IP))
					}
				}
			}
			return report("all pods", out)
		}},
		{name: "cluster networks contains all services", hint: "l5d-cluster-networks-pods", warning: true, run: func(ctx context.Context) error {
			ps, err := nets()
			if err != nil {
				return err
			}
			svcs, err := r.kube.CoreV1().Services("").List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			var out []string
			for _, s := range svcs.Items {
				for _, ip := range s.Spec.ClusterIPs {
					if ip != corev1.ClusterIPNone && !covered(ps, ip) {
						out = append(out, fmt.Sprintf("%s/%s(%s)", s.Namespace, s.Name, ip))
					}
				}
			}
			return report("all services", out)
		}},
	}
}
