// Package jaegerext renders the jaeger extension: the values `linkerd
// jaeger install` renders the linkerd-jaeger chart with. Every object of the extension
// carries the label linkerd.io/extension=jaeger (Selector), which is how `linkerd jaeger
// uninstall` finds them again (vizext.InstalledBy).
package jaegerext

import (
	"github.com/l5d-go/l5d/cli/vizext"
	"github.com/l5d-go/l5d/deploy"
)

// Label value every object of the extension carries (under vizext.Label); DefaultNamespace
// is where `linkerd jaeger install` puts it.
const (
	LabelValue       = "jaeger"
	Selector         = vizext.Label + "=" + LabelValue
	DefaultNamespace = "linkerd-jaeger"
)

// Options say how to render the extension: the Namespace defaults to linkerd-jaeger and
// Version is the jaeger-injector image tag.
type Options = vizext.Options

// Render renders the linkerd-jaeger chart for o. cluster, when non-nil, holds the values
// of the installed control plane (vizext.ControlPlaneValues): its clusterDomain and
// identityTrustDomain are kept, so that the collector's identity is the mesh's.
func Render(o Options, cluster map[string]any) ([]byte, error) {
	vals, err := Values(o, cluster)
	if err != nil {
		return nil, err
	}
	return deploy.Render(deploy.JaegerChart, deploy.Options{Namespace: namespace(o.Namespace), Values: vals})
}

// Values returns the chart values for o (see Render). In a namespace other than
// linkerd-jaeger, the proxies export to that namespace's Jaeger unless the values say
// otherwise.
func Values(o Options, cluster map[string]any) (map[string]any, error) {
	vals := vizext.BaseValues(o, cluster, "clusterDomain", "identityTrustDomain")
	if ns := namespace(o.Namespace); ns != DefaultNamespace {
		vals["webhook"] = map[string]any{"collectorSvcAddr": "jaeger." + ns + ":4317"}
	}
	return o.Values.MergeInto(vals)
}

func namespace(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}
