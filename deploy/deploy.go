// Package deploy embeds the l5d Helm charts (every directory under deploy/charts:
// linkerd-crds, linkerd-control-plane, the viz extension's linkerd-viz and the
// multicluster extension's linkerd-multicluster) and renders them
// with Helm's template engine, the way `linkerd install`, `linkerd upgrade` and `linkerd viz
// install` do. Each chart is complete as it is on disk, so the real `helm` CLI installs the
// same files. The CRD chart's templates are the CRDs the other components test against
// (deploy/crds is a link to them).
package deploy

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"
)

// Names of the embedded charts.
const (
	CRDsChart         = "linkerd-crds"
	ControlPlaneChart = "linkerd-control-plane"
	CNIChart          = "linkerd2-cni"
	VizChart          = "linkerd-viz"
	MulticlusterChart = "linkerd-multicluster"
	JaegerChart       = "linkerd-jaeger"
)

//go:embed all:charts
var chartFiles embed.FS

// Chart loads one of the embedded charts by name (CRDsChart, ControlPlaneChart, CNIChart,
// VizChart, MulticlusterChart or JaegerChart).
func Chart(name string) (*chart.Chart, error) {
	root := path.Join("charts", name)
	var files []*loader.BufferedFile
	err := fs.WalkDir(chartFiles, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := chartFiles.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, &loader.BufferedFile{Name: strings.TrimPrefix(p, root+"/"), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chart %q: %w", name, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no embedded chart named %q (have %s, %s, %s, %s, %s, %s)", name, CRDsChart, ControlPlaneChart, CNIChart, VizChart, MulticlusterChart, JaegerChart)
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("chart %q: %w", name, err)
	}
	return c, nil
}

// HAValues returns the control-plane chart's values-ha.yaml as a values map.
func HAValues() (map[string]any, error) {
	data, err := chartFiles.ReadFile("charts/" + ControlPlaneChart + "/values-ha.yaml")
	if err != nil {
		return nil, err
	}
	v := map[string]any{}
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("values-ha.yaml: %w", err)
	}
	return v, nil
}

// Options say how to render a chart.
type Options struct {
	// Namespace is the release namespace (default "linkerd"): the control plane's, or the
	// extension's for VizChart (linkerd-viz).
	Namespace string
	// Values override the chart's values.yaml (merged deeply; Values win).
	Values map[string]any
	// KubeVersion is the Kubernetes version to render for (default: Helm's default).
	KubeVersion string
}

// Render renders the named embedded chart with opts and returns a multi-document YAML
// stream: objects in Helm's install order (namespaces, CRDs, RBAC, config, workloads,
// webhooks), each preceded by a "# Source:" comment. The output depends only on the chart,
// the values and the genCA/genSignedCert keys the templates generate.
func Render(name string, opts Options) ([]byte, error) {
	c, err := Chart(name)
	if err != nil {
		return nil, err
	}
	ns := opts.Namespace
	if ns == "" {
		ns = "linkerd"
	}
	caps := chartutil.DefaultCapabilities.Copy()
	if opts.KubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(opts.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("kubernetes version %q: %w", opts.KubeVersion, err)
		}
		caps.KubeVersion = *kv
	}
	vals, err := chartutil.ToRenderValues(c, opts.Values, chartutil.ReleaseOptions{
		Name: name, Namespace: ns, Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return nil, fmt.Errorf("values of %s: %w", name, err)
	}
	rendered, err := engine.Render(c, vals)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	for f := range rendered {
		if strings.HasSuffix(f, "/NOTES.txt") { // what helm install prints, not an object
			delete(rendered, f)
		}
	}
	_, manifests, err := releaseutil.SortManifests(rendered, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	var out bytes.Buffer
	for _, m := range manifests {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", m.Name, strings.TrimSpace(m.Content))
	}
	return out.Bytes(), nil
}

// ControlPlaneValues returns the control-plane chart's default values (values.yaml).
func ControlPlaneValues() (map[string]any, error) {
	c, err := Chart(ControlPlaneChart)
	if err != nil {
		return nil, err
	}
	return c.Values, nil
}
