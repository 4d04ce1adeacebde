package vizext

import (
	"fmt"
	"io"
	"text/template"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ScrapeOptions say whose proxies' metrics to admit.
type ScrapeOptions struct {
	// Namespace holds the meshed pods Prometheus must scrape.
	Namespace string
	// VizNamespace is the extension's namespace (Prometheus' ServiceAccount and the kubelet
	// NetworkAuthentication live there).
	VizNamespace string
	// CreatedBy is the linkerd.io/created-by annotation (e.g. "linkerd/cli v1.2.3").
	CreatedBy string
}

// allowScrapes is the policy of `linkerd viz allow-scrapes`, as Linkerd's: a Server for
// every pod's proxy admin port (linkerd-admin, 4191) in the namespace, HTTP routes for its
// /metrics and its probes, and authorizations for Prometheus' ServiceAccount (the metrics)
// and the kubelet's networks (the probes). Under a deny default policy these are what lets
// Prometheus and the kubelet keep reaching the proxies.
var allowScrapes = template.Must(template.New("allow-scrapes").Parse(`{{define "meta"}}
  namespace: {{.Namespace}}
  annotations:
    linkerd.io/created-by: {{.CreatedBy}}
  labels:
    linkerd.io/extension: viz
{{- end}}---
apiVersion: policy.linkerd.io/v1beta1
kind: Server
metadata:
  name: proxy-admin
  {{- template "meta" .}}
spec:
  podSelector:
    matchLabels: {}
  port: linkerd-admin
  proxyProtocol: HTTP/1
{{- range .Routes}}
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata:
  name: {{.Name}}
  {{- template "meta" $}}
spec:
  parentRefs:
  - name: proxy-admin
    kind: Server
    group: policy.linkerd.io
  rules:
  - matches:
    {{- range .Paths}}
    - path:
        value: {{.}}
    {{- end}}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: {{.Policy}}
  {{- template "meta" $}}
spec:
  targetRef:
    group: policy.linkerd.io
    kind: HTTPRoute
    name: {{.Name}}
  requiredAuthenticationRefs:
  - {{with .Group}}group: {{.}}
    {{end}}kind: {{.Kind}}
    name: {{.Client}}
    namespace: {{$.VizNamespace}}
{{- end}}
`))

// scrapeRoute is one HTTPRoute of the proxy-admin Server and the AuthorizationPolicy
// admitting its client.
type scrapeRoute struct {
	Name, Policy string
	Paths        []string
	// Group, Kind and Client name the required authentication (in the viz namespace).
	Group, Kind, Client string
}

var scrapeRoutes = []scrapeRoute{
	{Name: "proxy-metrics", Policy: "prometheus-scrape", Paths: []string{"/metrics"}, Kind: "ServiceAccount", Client: "prometheus"},
	{Name: "proxy-probes", Policy: "proxy-probes", Paths: []string{"/live", "/ready"}, Group: "policy.linkerd.io", Kind: "NetworkAuthentication", Client: "kubelet"},
}

// WriteAllowScrapes writes the policy admitting Prometheus' scrapes (and the kubelet's
// probes) of every proxy in o.Namespace. An invalid namespace name is an error naming it.
func WriteAllowScrapes(w io.Writer, o ScrapeOptions) error {
	for _, n := range []struct{ flag, v string }{{"--namespace", o.Namespace}, {"viz namespace", o.VizNamespace}} {
		if n.v == "" {
			return fmt.Errorf("%s is required", n.flag)
		}
		if errs := validation.IsDNS1123Label(n.v); len(errs) > 0 {
			return fmt.Errorf("%s %q is not a namespace name: %s", n.flag, n.v, errs[0])
		}
	}
	return allowScrapes.Execute(w, struct {
		ScrapeOptions
		Routes []scrapeRoute
	}{o, scrapeRoutes})
}
