// Package mcext renders, links and lists the multicluster extension's objects for the
// `linkerd multicluster` commands: the values `install` renders the linkerd-multicluster
// chart with, the credentials Secret and Link that `link-gen` (and `link`, with the
// service mirror) print from the target cluster, the objects `unlink` and `uninstall`
// print for `kubectl delete -f -`, and the gateways' state `gateways` reports. Every
// object of the extension carries linkerd.io/extension=multicluster; every object of one
// link also mirror.linkerd.io/cluster-name=<link>.
package mcext

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/cli/vizext"
	"github.com/l5d-go/l5d/deploy"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"sigs.k8s.io/yaml"
)

// Label selector of the extension's objects.
const Selector = "linkerd.io/extension=multicluster"

// Options say how to render the extension.
type Options struct {
	// Namespace is the extension's namespace (default linkerd-multicluster).
	Namespace string
	// LinkerdNamespace is the control plane's namespace.
	LinkerdNamespace string
	// Version, when set, is the chart's linkerdVersion (the service-mirror image tag).
	Version string
	// Gateway installs the gateway (false: pod-to-pod only, `--gateway=false`).
	Gateway bool
	// Values are the user's -f/--set/--set-string values, applied last.
	Values install.ValueOptions
}

// Namespace returns ns, or the extension's default namespace when empty.
func Namespace(ns string) string {
	if ns == "" {
		return mc.Namespace
	}
	return ns
}

// Values returns the chart values for o. cluster, when non-nil, holds the values of the
// installed control plane: its trust domain names the gateway's identity.
func Values(o Options, cluster map[string]any) (map[string]any, error) {
	vals := map[string]any{"installNamespace": true, "gateway": map[string]any{"enabled": o.Gateway}}
	if o.LinkerdNamespace != "" {
		vals["linkerdNamespace"] = o.LinkerdNamespace
	}
	if td := trustDomain(cluster); td != "" {
		vals["identityTrustDomain"] = td
	}
	if o.Version != "" {
		vals["linkerdVersion"] = o.Version
	}
	return o.Values.MergeInto(vals)
}

// trustDomain is the control plane's identityTrustDomain, or its clusterDomain.
func trustDomain(cluster map[string]any) string {
	if td, ok := cluster["identityTrustDomain"].(string); ok && td != "" {
		return td
	}
	if d, ok := cluster["clusterDomain"].(string); ok && d != "" {
		return d
	}
	return ""
}

// clusterDomain is the control plane's clusterDomain (cluster.local by default).
func clusterDomain(cluster map[string]any) string {
	if d, ok := cluster["clusterDomain"].(string); ok && d != "" {
		return d
	}
	return "cluster.local"
}

// Render renders the linkerd-multicluster chart for o (see Values).
func Render(o Options, cluster map[string]any) ([]byte, error) {
	vals, err := Values(o, cluster)
	if err != nil {
		return nil, err
	}
	return deploy.Render(deploy.MulticlusterChart, deploy.Options{Namespace: Namespace(o.Namespace), Values: vals})
}

// renderSelected renders the chart with vals and keeps the objects keep accepts (by
// their labels), as a YAML stream.
func renderSelected(ns string, vals map[string]any, keep func(kind string, labels map[string]string) bool) ([]byte, error) {
	out, err := deploy.Render(deploy.MulticlusterChart, deploy.Options{Namespace: ns, Values: vals})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var o struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, fmt.Errorf("rendered manifest: %w", err)
		}
		if o.Kind == "" || !keep(o.Kind, o.Metadata.Labels) {
			continue
		}
		b.WriteString("---\n")
		b.WriteString(strings.TrimPrefix(strings.TrimSpace(doc), "---\n"))
		b.WriteString("\n")
	}
	return b.Bytes(), nil
}

// RenderController renders the service mirror of Link name (what `link` adds to
// link-gen's output): its ServiceAccount, RBAC and Deployment controller-<name>.
func RenderController(ns, name, version string) ([]byte, error) {
	vals := map[string]any{
		"gateway":                    map[string]any{"enabled": false},
		"remoteMirrorServiceAccount": false,
		"controllers":                []any{map[string]any{"link": map[string]any{"ref": map[string]any{"name": name}}}},
	}
	if version != "" {
		vals["linkerdVersion"] = version
	}
	return renderSelected(Namespace(ns), vals, func(kind string, l map[string]string) bool {
		return l[mc.LabelClusterName] == name
	})
}

// RenderRemoteAccess renders the ServiceAccount, token Secret and RBAC a linked
// cluster's service mirror authenticates as (what `allow` prints) for ServiceAccount sa.
func RenderRemoteAccess(ns, linkerdNS, sa, version string) ([]byte, error) {
	vals := map[string]any{"gateway": map[string]any{"enabled": false}, "remoteMirrorServiceAccountName": sa}
	if linkerdNS != "" {
		vals["linkerdNamespace"] = linkerdNS
	}
	if version != "" {
		vals["linkerdVersion"] = version
	}
	return renderSelected(Namespace(ns), vals, func(kind string, l map[string]string) bool {
		return l["component"] == "remote-mirror"
	})
}

// Ref names one object for `kubectl delete -f -`.
type Ref = vizext.Ref
