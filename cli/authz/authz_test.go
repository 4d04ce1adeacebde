package authz

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// TestListAgainstAPIServer applies Linkerd's CRDs and policy resources to a real API
// server and lists what applies to the web pods: the Server selecting them with its
// Server-wide and per-route AuthorizationPolicies and ServerAuthorizations (by name and
// by label), not the resources of another Server, then the proxies' default policy.
func TestListAgainstAPIServer(t *testing.T) {
	c := kube.Shared(t)
	crds, err := install.Render(install.Options{CRDs: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", string(crds))
	ns := c.Namespace(t)
	web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: ns, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "web", Image: "web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}},
			{Name: "linkerd-proxy", Image: "proxy", Env: []corev1.EnvVar{{Name: DefaultPolicyEnv, Value: "cluster-authenticated"}}},
		}}}
	c.CreatePod(t, web)
	c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-http, labels: {tier: front}}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
  proxyProtocol: HTTP/1
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-metrics}
spec:
  podSelector: {matchLabels: {app: web}}
  port: metrics
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: db}
spec:
  podSelector: {matchLabels: {app: db}}
  port: 5432
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: web-api}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web-http}]
  rules: [{matches: [{path: {type: PathPrefix, value: /api}}]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: clients}
spec:
  identities: ["*"]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-all}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: clients}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-api-only}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: web-api}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: clients}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: db-clients}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: db}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: clients}]
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: web-by-name}
spec:
  server: {name: web-http}
  client: {unauthenticated: true}
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: front-tier}
spec:
  server: {selector: {matchLabels: {tier: front}}}
  client: {meshTLS: {identities: ["*"]}}
`)
	pods, err := c.Client().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := List(context.Background(), c.Dynamic(), ns, pods.Items)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		got = append(got, strings.Join(strings.Fields(l), " "))
	}
	want := []string{
		"ROUTE SERVER AUTHORIZATION_POLICY SERVER_AUTHORIZATION",
		"* web-http web-all",
		"* web-http front-tier",
		"* web-http web-by-name",
		"web-api web-http web-api-only",
		"default default:cluster-authenticated default/cluster-authenticated",
		"probe default:cluster-authenticated default/probe",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), strings.Join(want, "\n"))
	}
}
