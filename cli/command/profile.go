package command

import (
	"fmt"
	"io"
	"os"
	"text/template"

	"github.com/l5d-go/l5d/cli/profile"
	"github.com/l5d-go/l5d/pkg/apis/serviceprofile"

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
		openAPI       string
		proto         string
		namespace     string
		clusterDomain string
	)
	c := &cobra.Command{
		Use:   "profile (--template | --open-api FILE|- | --proto FILE) SERVICE",
		Short: "Output service profile config for Kubernetes",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			set := 0
			for _, on := range []bool{tmpl, openAPI != "", proto != ""} {
				if on {
					set++
				}
			}
			if set != 1 {
				return fmt.Errorf("exactly one of --template, --open-api and --proto is required")
			}
			for what, v := range map[string]string{"service": args[0], "namespace": namespace} {
				if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
					return fmt.Errorf("invalid %s name %q: %s", what, v, errs[0])
				}
			}
			if openAPI != "" || proto != "" {
				return generateProfile(c, args[0], namespace, clusterDomain, openAPI, proto)
			}
			return profileTemplate.Execute(c.OutOrStdout(), map[string]string{
				"Service": args[0], "Namespace": namespace, "ClusterDomain": clusterDomain,
			})
		},
	}
	c.Flags().BoolVar(&tmpl, "template", false, "output a commented ServiceProfile template")
	c.Flags().StringVar(&openAPI, "open-api", "", "build the profile from a Swagger 2.0 or OpenAPI 3 document (JSON or YAML; - reads stdin)")
	c.Flags().StringVar(&proto, "proto", "", "build the profile from the services of a .proto file (- reads stdin)")
	c.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of the service")
	c.Flags().StringVar(&clusterDomain, "cluster-domain", "cluster.local", "cluster DNS domain")
	return c
}

// generateProfile prints a ServiceProfile whose routes come from an OpenAPI document
// or a .proto file.
func generateProfile(c *cobra.Command, service, namespace, clusterDomain, openAPI, proto string) error {
	file, parse := openAPI, profile.FromOpenAPI
	if proto != "" {
		file, parse = proto, profile.FromProto
	}
	var src []byte
	var err error
	if file == "-" {
		src, err = io.ReadAll(c.InOrStdin())
	} else {
		src, err = os.ReadFile(file)
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	routes, err := parse(src)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return writeProfile(c, service, namespace, clusterDomain, routes)
}

// writeProfile prints the ServiceProfile of service with routes.
func writeProfile(c *cobra.Command, service, namespace, clusterDomain string, routes []serviceprofile.RouteSpec) error {
	sp := profile.New(service, namespace, clusterDomain)
	sp.Spec = serviceprofile.Spec{Routes: routes}
	out, err := profile.Marshal(sp)
	if err != nil {
		return err
	}
	_, err = c.OutOrStdout().Write(out)
	return err
}
