package validator_test

import (
	"os"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/policy/validator"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// policyCluster installs the policy CRDs and registers the validator, served on loopback,
// for the policy resources of a fresh namespace, which it returns.
func policyCluster(t *testing.T) (*kube.Cluster, string) {
	t.Helper()
	c := kube.Shared(t)
	crds, err := os.ReadFile("../../deploy/crds/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "", string(crds))
	for _, d := range unstructuredDocs(t, string(crds)) {
		c.WaitCRD(t, d)
	}
	ns := c.Namespace(t)
	srv := kube.ServeHTTPS(t, &validator.Handler{})
	c.RegisterValidatingWebhook(t, kube.Webhook{Name: "linkerd-policy-validator.l5d.test", URL: srv.URL, CABundle: srv.CABundle, Namespaces: []string{ns},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{api.Group, "gateway.networking.k8s.io"}, APIVersions: []string{"*"}, Resources: []string{"*"}},
		}}})
	return c, ns
}

// unstructuredDocs returns the names of the CRDs in a multi-document YAML file.
func unstructuredDocs(t *testing.T, text string) []string {
	var names []string
	for _, line := range strings.Split(text, "\n") {
		if n, ok := strings.CutPrefix(line, "  name: "); ok && strings.HasSuffix(n, "."+api.Group) {
			names = append(names, strings.TrimSpace(n))
		}
	}
	if len(names) == 0 {
		t.Fatal("no CRD names found in deploy/crds/policy.yaml")
	}
	return names
}

// TestAPIServerRefusesInvalidPolicy creates each object through the API server: valid ones
// are stored, and the refusal of each invalid one names the offending field.
func TestAPIServerRefusesInvalidPolicy(t *testing.T) {
	c, ns := policyCluster(t)
	valid := []string{`apiVersion: policy.linkerd.io/v1beta1
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
  proxyProtocol: HTTP/1
`, `apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: web-clients}
spec:
  identities: ["*.` + ns + `.serviceaccount.identity.linkerd.cluster.local", "client.other.serviceaccount.identity.linkerd.cluster.local"]
  identityRefs: [{kind: ServiceAccount, name: client}]
`, `apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: cluster}
spec:
  networks: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.3.4]}, {cidr: "fd00::/8"}]
`, `apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-authz}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web-clients}
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: cluster}
`}
	for _, y := range valid {
		c.Apply(t, ns, y)
	}
	for _, tc := range []struct{ yaml, field string }{
		{strings.Replace(valid[0], "port: http", "port: 70000", 1), "spec.port"},
		{strings.Replace(valid[0], "port: http", `port: "80"`, 1), "spec.port"},
		{strings.Replace(valid[0], "port: http", `port: web_http`, 1), "spec.port"},
		{strings.Replace(valid[0], "{app: web}", `{"bad key!": web}`, 1), "spec.podSelector.matchLabels"},
		{strings.Replace(valid[0], "podSelector: {matchLabels: {app: web}}", `podSelector: {matchExpressions: [{key: app, operator: In}]}`, 1), "spec.podSelector.matchExpressions[0].values"},
		{strings.Replace(valid[0], "proxyProtocol: HTTP/1", `proxyProtocol: HTTP/3`, 1), "spec.proxyProtocol"},
		{strings.Replace(valid[1], `"*.`+ns, `"web.*.`+ns, 1), "spec.identities[0]"},
		{strings.Replace(valid[1], "{kind: ServiceAccount, name: client}", "{kind: Pod, name: client}", 1), "spec.identityRefs[0].kind"},
		{`apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: nobody}
spec: {}
`, "spec.identities"},
		{strings.Replace(valid[2], "cidr: 10.0.0.0/8,", "cidr: 10.0.0.0/40,", 1), "spec.networks[0].cidr"},
		{strings.Replace(valid[2], "10.1.0.0/16", "192.168.0.0/16", 1), "spec.networks[0].except[0]"},
		{strings.Replace(valid[2], "10.2.3.4", "10.0.0.0/7", 1), "spec.networks[0].except[1]"},
		{strings.Replace(valid[2], "10.2.3.4", "ten", 1), "spec.networks[0].except[1]"},
		{strings.Replace(valid[3], "kind: Server", "kind: Deployment", 1), "spec.targetRef.kind"},
		{strings.Replace(valid[3], "group: policy.linkerd.io, kind: Server", "group: apps, kind: Server", 1), "spec.targetRef.kind"},
		{strings.Replace(valid[3], "kind: NetworkAuthentication", "kind: Secret", 1), "spec.requiredAuthenticationRefs[1].kind"},
	} {
		_, err := c.ApplyYAML(t.Context(), ns, tc.yaml)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("want a refusal naming %s, got %v\n%s", tc.field, err, tc.yaml)
		}
	}
	// Routes and ServerAuthorizations.
	route := `apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: books}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web-http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /books}, headers: [{name: x-user, type: RegularExpression, value: "a.*"}]}]
`
	authz := `apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: web-saz}
spec:
  server: {name: web-http}
  client:
    meshTLS: {identities: ["*.` + ns + `.serviceaccount.identity.linkerd.cluster.local"]}
`
	c.Apply(t, ns, route)
	c.Apply(t, ns, authz)
	for _, tc := range []struct{ yaml, field string }{
		{strings.Replace(route, "value: /books", "value: books", 1), "spec.rules[0].matches[0].path.value"},
		{strings.Replace(route, `"a.*"`, `"a(("`, 1), "spec.rules[0].matches[0].headers[0].value"},
		{strings.Replace(authz, "meshTLS: {identities:", "meshTLS: {unauthenticatedTLS: true, identities:", 1), "spec.client.meshTLS.unauthenticatedTLS"},
		{strings.Replace(authz, "server: {name: web-http}", "server: {}", 1), "spec.server"},
	} {
		_, err := c.ApplyYAML(t.Context(), ns, tc.yaml)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("want a refusal naming %s, got %v\n%s", tc.field, err, tc.yaml)
		}
	}

	// An update is checked too, and the stored object is left as it was.
	_, err := c.ApplyYAML(t.Context(), ns, strings.Replace(valid[0], "port: http", "port: 0", 1))
	if err == nil || !strings.Contains(err.Error(), "spec.port") {
		t.Errorf("update to port 0: %v", err)
	}
	srv, err := c.Dynamic().Resource(api.Servers).Namespace(ns).Get(t.Context(), "web-http", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if port, _, _ := unstructured.NestedFieldNoCopy(srv.Object, "spec", "port"); port != "http" {
		t.Errorf("stored Server port %v after a refused update", port)
	}
}
