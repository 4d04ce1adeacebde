package check

import (
	"context"
	"fmt"
	"strings"

	"github.com/l5d-go/l5d/cli/mcext"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// MulticlusterOptions parameterise `linkerd multicluster check`.
type MulticlusterOptions struct {
	// Namespace is the extension's namespace (linkerd-multicluster by default).
	Namespace string
}

// RunMulticluster runs the checks of `linkerd multicluster check` (Linkerd's
// linkerd-multicluster category): the extension is installed, every Link is valid, its
// credentials reach the linked cluster's API server, its service mirror runs, and its
// gateway answers the probes.
func RunMulticluster(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, o MulticlusterOptions) Report {
	m := &mcRunner{kube: kube, dyn: dyn, ns: mcext.Namespace(o.Namespace)}
	return runGroups(ctx, []func() group{m.group})
}

type mcRunner struct {
	kube  kubernetes.Interface
	dyn   dynamic.Interface
	ns    string
	links []mc.Link
}

func (m *mcRunner) group() group {
	return group{name: "linkerd-multicluster", checks: []check{
		{name: "Link CRD exists", hint: "l5d-multicluster-link-crd-exists", fatal: true, run: m.crd},
		{name: "the multicluster namespace exists", hint: "l5d-multicluster-ns-exists", fatal: true, run: m.namespace},
		{name: "Link resources are valid", hint: "l5d-multicluster-links-are-valid", run: m.linksValid},
		{name: "remote cluster access credentials are valid", hint: "l5d-smc-target-clusters-access", run: m.remoteAccess},
		{name: "service mirror controllers are running", hint: "l5d-multicluster-links-have-controllers", run: m.controllers},
		{name: "all gateway mirrors are healthy", hint: "l5d-multicluster-gateways-endpoints", run: m.gateways},
		{name: "all mirror services are in step (Link status)", hint: "l5d-multicluster-link-status", run: m.linkStatus},
	}}
}

func (m *mcRunner) crd(ctx context.Context) error {
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := m.dyn.Resource(crds).Get(ctx, mc.Resource+"."+mc.Group, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("the CRD %s.%s is missing: install the extension with `linkerd multicluster install | kubectl apply -f -`", mc.Resource, mc.Group)
		}
		return err
	}
	return nil
}

func (m *mcRunner) namespace(ctx context.Context) error {
	if _, err := m.kube.CoreV1().Namespaces().Get(ctx, m.ns, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("namespace %s does not exist: install the extension with `linkerd multicluster install | kubectl apply -f -`", m.ns)
		}
		return err
	}
	links, err := mcext.Links(ctx, m.dyn, m.ns)
	m.links = links
	return err
}

func (m *mcRunner) each(f func(l *mc.Link) error) error {
	if len(m.links) == 0 {
		return errSkip
	}
	var bad []string
	for i := range m.links {
		if err := f(&m.links[i]); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", m.links[i].Name, err))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "\n    "))
	}
	return nil
}

func (m *mcRunner) linksValid(context.Context) error {
	return m.each(func(l *mc.Link) error { _, err := mc.Parse(l); return err })
}

func (m *mcRunner) remoteAccess(ctx context.Context) error {
	return m.each(func(l *mc.Link) error {
		s, err := m.kube.CoreV1().Secrets(l.Namespace).Get(ctx, l.Spec.ClusterCredentialsSecret, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("credentials Secret %s: %w", l.Spec.ClusterCredentialsSecret, err)
		}
		cfg, err := mc.RemoteConfig(s)
		if err != nil {
			return err
		}
		remote, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		if _, err := remote.CoreV1().Services("").List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			return fmt.Errorf("listing Services of %s at %s with the link's credentials: %w", l.Spec.TargetClusterName, cfg.Host, err)
		}
		return nil
	})
}

func (m *mcRunner) controllers(ctx context.Context) error {
	return m.each(func(l *mc.Link) error {
		name := mc.ControllerPrefix + l.Name
		d, err := m.kube.AppsV1().Deployments(l.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no service mirror Deployment %s/%s: add {link: {ref: {name: %s}}} to the chart's controllers, or use `linkerd multicluster link`", l.Namespace, name, l.Name)
		}
		if err != nil {
			return err
		}
		if d.Status.ReadyReplicas == 0 {
			return fmt.Errorf("the Deployment %s/%s has no ready replica", l.Namespace, name)
		}
		return nil
	})
}

func (m *mcRunner) gateways(ctx context.Context) error {
	if len(m.links) == 0 {
		return errSkip
	}
	gws, err := mcext.Gateways(ctx, m.kube, m.dyn, m.ns)
	if err != nil {
		return err
	}
	if len(gws) == 0 {
		return errSkip
	}
	var bad []string
	for _, g := range gws {
		switch {
		case g.Err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v", g.Cluster, g.Err))
		case !*g.Alive:
			bad = append(bad, fmt.Sprintf("%s: the gateway does not answer its probes", g.Cluster))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "\n    "))
	}
	return nil
}

// linkStatus reads each Link's status, as its service mirror writes it: a mirror whose
// Mirrored condition is not True fails the check, naming the remote Service and why. A
// Link without a status yet passes.
func (m *mcRunner) linkStatus(context.Context) error {
	return m.each(func(l *mc.Link) error {
		if l.Status == nil {
			return nil
		}
		var bad []string
		for _, s := range l.Status.MirrorServices {
			for _, c := range s.Conditions {
				if c.Type == mc.ConditionMirrored && c.Status != metav1.ConditionTrue {
					bad = append(bad, fmt.Sprintf("%s/%s is not mirrored (%s): %s", s.RemoteRef.Namespace, s.RemoteRef.Name, c.Reason, c.Message))
				}
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("%s", strings.Join(bad, "; "))
		}
		return nil
	})
}
