package command

import (
	"fmt"
	"text/template"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
)

var profileTemplate = template.Must(template.New("profile").Parse(`### ServiceProfile for {{.Service}}.{{.Namespace}} ###
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata:
  name: {{.Service}}.{{.Namespace}}.svc.{{.ClusterDomain}}
  namespace: {{.Namespace}}
spec:
  # A service profile defines a list of routes. Linkerd matches every incoming
  # request against these routes and uses the first match.
  routes:
  - name: '/authors/{id}'
    # The condition a request must match: method and a regular expression on the path.
    condition:
      method: GET
      pathRegex: '/authors/\d+'
    # Response classes decide which responses are failures (for retries and success rate).
    responseClasses:
    - condition:
        status:
          min: 500
          max: 599
      isFailure: true
    # Requests on this route may be retried.
    isRetryable: false
    # Requests taking longer than this fail with a 504.
    timeout: 10s
  # Limits the share of retries over all requests.
  retryBudget:
    retryRatio: 0.2
    minRetriesPerSecond: 10
    ttl: 10s
`))

func profileCmd() *cobra.Command {
	var (
		tmpl          bool
		namespace     string
		clusterDomain string
	)
	c := &cobra.Command{
		Use:   "profile --template SERVICE",
		Short: "Output service profile config for Kubernetes",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !tmpl {
				return fmt.Errorf("only --template is supported (--open-api and --proto are not implemented)")
			}
			for what, v := range map[string]string{"service": args[0], "namespace": namespace} {
				if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
					return fmt.Errorf("invalid %s name %q: %s", what, v, errs[0])
				}
			}
			return profileTemplate.Execute(c.OutOrStdout(), map[string]string{
				"Service": args[0], "Namespace": namespace, "ClusterDomain": clusterDomain,
			})
		},
	}
	c.Flags().BoolVar(&tmpl, "template", false, "output a commented ServiceProfile template")
	c.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of the service")
	c.Flags().StringVar(&clusterDomain, "cluster-domain", "cluster.local", "cluster DNS domain")
	return c
}
