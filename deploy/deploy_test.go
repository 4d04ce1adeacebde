package deploy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testValues returns control-plane values with a freshly generated anchor and issuer, and
// the Namespace rendered as `linkerd install` renders it.
func testValues(t testing.TB) map[string]any {
	t.Helper()
	now := time.Now()
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(now, 365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), certs.ValidFor(now, 365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, err := certs.EncodePrivateKeyPEM(issuer.Key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"installNamespace":        true,
		"identityTrustAnchorsPEM": string(certs.EncodeCertificatesPEM(anchor.Cert)),
		"identity": map[string]any{"issuer": map[string]any{"tls": map[string]any{
			"crtPEM": string(certs.EncodeCertificatesPEM(issuer.Cert)),
			"keyPEM": string(key),
		}}},
	}
}

var (
	pemBlock   = regexp.MustCompile(`-----BEGIN ([A-Z ]+)-----[A-Za-z0-9+/=\s]*?-----END [A-Z ]+-----`)
	secretData = regexp.MustCompile(`(?m)^(\s*(?:tls\.crt|tls\.key|crt\.pem|key\.pem|ca\.crt|caBundle|linkerd\.io/trust-root-sha256): ).+$`)
)

// mask replaces generated key material with placeholders so manifests can be compared.
func mask(b []byte) []byte {
	b = pemBlock.ReplaceAll(b, []byte("-----BEGIN $1----- MASKED"))
	return secretData.ReplaceAll(b, []byte("${1}MASKED"))
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("rendered %s differs from %s; rerun with -update and review the diff", name, p)
	}
}

func haValues(t *testing.T) map[string]any {
	ha, err := HAValues()
	if err != nil {
		t.Fatal(err)
	}
	v := testValues(t)
	for k, x := range ha {
		if _, ok := v[k]; !ok {
			v[k] = x
		}
	}
	v["identity"].(map[string]any)["resources"] = ha["identity"].(map[string]any)["resources"]
	return v
}

func TestGoldenManifests(t *testing.T) {
	for _, tc := range []struct {
		golden, chart string
		values        func(t *testing.T) map[string]any
	}{
		{"control-plane.golden.yaml", ControlPlaneChart, func(t *testing.T) map[string]any { return testValues(t) }},
		{"control-plane-ha.golden.yaml", ControlPlaneChart, haValues},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, err := Render(tc.chart, Options{Values: tc.values(t)})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, mask(out))
			again, err := Render(tc.chart, Options{Values: tc.values(t)})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mask(out), mask(again)) {
				t.Error("two renders differ in more than their keys")
			}
		})
	}
}

// kinds lists "Kind/name" of every object in a rendered stream.
func kinds(t *testing.T, out []byte) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered document is not YAML: %v\n%s", err, doc)
		}
		if o == nil {
			continue
		}
		md, _ := o["metadata"].(map[string]any)
		objs[o["kind"].(string)+"/"+md["name"].(string)] = o
	}
	return objs
}

func TestControlPlaneObjects(t *testing.T) {
	v := testValues(t)
	v["profileValidator"] = map[string]any{"enabled": true}
	v["policyValidator"] = map[string]any{"enabled": true}
	out, err := Render(ControlPlaneChart, Options{Values: v})
	if err != nil {
		t.Fatal(err)
	}
	objs := kinds(t, out)
	for _, want := range []string{
		"Namespace/linkerd",
		"ConfigMap/linkerd-config", "ConfigMap/linkerd-identity-trust-roots", "Secret/linkerd-identity-issuer",
		"Deployment/linkerd-identity", "Deployment/linkerd-destination", "Deployment/linkerd-proxy-injector",
		"Service/linkerd-identity", "Service/linkerd-identity-headless", "Service/linkerd-dst", "Service/linkerd-dst-headless",
		"Service/linkerd-sp-validator", "Service/linkerd-policy", "Service/linkerd-policy-validator", "Service/linkerd-proxy-injector",
		"MutatingWebhookConfiguration/linkerd-proxy-injector-webhook-config",
		"ValidatingWebhookConfiguration/linkerd-sp-validator-webhook-config",
		"ValidatingWebhookConfiguration/linkerd-policy-validator-webhook-config",
		"ClusterRole/linkerd-linkerd-identity", "ClusterRole/linkerd-linkerd-destination", "ClusterRole/linkerd-policy",
		"ClusterRoleBinding/linkerd-destination-policy", "ClusterRole/linkerd-linkerd-proxy-injector",
		"ServiceAccount/linkerd-identity", "ServiceAccount/linkerd-destination", "ServiceAccount/linkerd-proxy-injector",
		"Secret/linkerd-sp-validator-k8s-tls", "Secret/linkerd-policy-validator-k8s-tls", "Secret/linkerd-proxy-injector-k8s-tls",
	} {
		if objs[want] == nil {
			t.Errorf("install does not render %s", want)
		}
	}
	for k := range objs {
		if strings.HasPrefix(k, "PodDisruptionBudget/") {
			t.Errorf("non-HA install renders %s", k)
		}
	}
	ns := objs["Namespace/linkerd"]["metadata"].(map[string]any)
	if ns["labels"].(map[string]any)["config.linkerd.io/admission-webhooks"] != "disabled" ||
		ns["annotations"].(map[string]any)["linkerd.io/inject"] != "disabled" {
		t.Errorf("namespace lacks the webhook/injection opt-outs: %v", ns)
	}
	// Every control-plane pod is meshed: linkerd-init plus a linkerd-proxy container.
	for _, d := range []string{"linkerd-identity", "linkerd-destination", "linkerd-proxy-injector"} {
		spec := objs["Deployment/"+d]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		names := []string{}
		for _, c := range spec["containers"].([]any) {
			names = append(names, c.(map[string]any)["name"].(string))
		}
		if names[0] != "linkerd-proxy" || spec["initContainers"].([]any)[0].(map[string]any)["name"] != "linkerd-init" {
			t.Errorf("%s is not meshed: containers %v", d, names)
		}
	}
}

func TestHA(t *testing.T) {
	out, err := Render(ControlPlaneChart, Options{Values: haValues(t)})
	if err != nil {
		t.Fatal(err)
	}
	objs := kinds(t, out)
	for _, c := range []string{"identity", "destination", "proxy-injector"} {
		d := objs["Deployment/linkerd-"+c]["spec"].(map[string]any)
		if d["replicas"] != float64(3) {
			t.Errorf("%s: replicas %v, want 3", c, d["replicas"])
		}
		pod := d["template"].(map[string]any)["spec"].(map[string]any)
		if _, ok := pod["affinity"].(map[string]any)["podAntiAffinity"].(map[string]any)["requiredDuringSchedulingIgnoredDuringExecution"]; !ok {
			t.Errorf("%s: no required pod anti-affinity", c)
		}
		for _, ctr := range pod["containers"].([]any) {
			r, _ := ctr.(map[string]any)["resources"].(map[string]any)
			if r["limits"] == nil || r["requests"] == nil {
				t.Errorf("%s/%s: no resource requests and limits", c, ctr.(map[string]any)["name"])
			}
		}
		if objs["PodDisruptionBudget/linkerd-"+c] == nil {
			t.Errorf("no PodDisruptionBudget for %s", c)
		}
	}
	wh := objs["MutatingWebhookConfiguration/linkerd-proxy-injector-webhook-config"]["webhooks"].([]any)[0].(map[string]any)
	if wh["failurePolicy"] != "Fail" {
		t.Errorf("HA injector failurePolicy %v, want Fail", wh["failurePolicy"])
	}
	if !strings.Contains(string(out), "values: [linkerd, kube-system]") {
		t.Error("HA injector webhook does not exclude linkerd and kube-system")
	}
}

func TestBadValues(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"no anchors", map[string]any{}, "identityTrustAnchorsPEM is required"},
		{"bad scheme", func() map[string]any {
			v := testValues(t)
			v["identity"].(map[string]any)["issuer"].(map[string]any)["scheme"] = "bogus"
			return v
		}(), "identity.issuer.scheme must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(ControlPlaneChart, Options{Values: tc.values})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := Render("nope", Options{}); err == nil {
		t.Error("unknown chart rendered")
	}
}

func TestExternalIssuer(t *testing.T) {
	v := testValues(t)
	v["identity"] = map[string]any{"issuer": map[string]any{"scheme": "kubernetes.io/tls"}}
	out, err := Render(ControlPlaneChart, Options{Values: v})
	if err != nil {
		t.Fatal(err)
	}
	if kinds(t, out)["Secret/linkerd-identity-issuer"] != nil {
		t.Error("kubernetes.io/tls scheme still renders the issuer Secret")
	}
}

// TestValidatorsByDefault: both validating webhooks are on by default, the sp-validator
// served by the destination container and the policy validator by the policy container,
// each with its certificate Secret mounted.
func TestValidatorsByDefault(t *testing.T) {
	out, err := Render(ControlPlaneChart, Options{Values: testValues(t)})
	if err != nil {
		t.Fatal(err)
	}
	objs := kinds(t, out)
	var webhooks []string
	for k := range objs {
		if strings.HasPrefix(k, "ValidatingWebhookConfiguration/") {
			webhooks = append(webhooks, k)
		}
	}
	sort.Strings(webhooks)
	if want := []string{"ValidatingWebhookConfiguration/linkerd-policy-validator-webhook-config",
		"ValidatingWebhookConfiguration/linkerd-sp-validator-webhook-config"}; !slices.Equal(webhooks, want) {
		t.Errorf("validating webhooks %v, want %v", webhooks, want)
	}
	if !strings.Contains(string(out), "- -sp-validator-addr=:8443") {
		t.Error("the destination container does not serve the sp-validator")
	}
	for _, want := range []string{"- -validator-addr=:9443", "- {containerPort: 9443, name: policy-https}", "secretName: linkerd-policy-validator-k8s-tls"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the policy container does not serve the policy validator: no %q", want)
		}
	}
	if objs["Secret/linkerd-policy-validator-k8s-tls"] == nil || objs["Service/linkerd-policy-validator"] == nil {
		t.Error("the policy validator's Secret or Service is missing")
	}
}

// TestCRDChartIsDeployCRDs: the linkerd-crds chart renders every CRD of deploy/crds (a link
// to the chart's templates, read by the components' tests) and nothing else.
func TestCRDChartIsDeployCRDs(t *testing.T) {
	out, err := Render(CRDsChart, Options{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("crds/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRD files in deploy/crds: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var o map[string]any
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o == nil {
				continue
			}
			name := o["metadata"].(map[string]any)["name"].(string)
			if kinds(t, out)["CustomResourceDefinition/"+name] == nil {
				t.Errorf("CRD chart lacks %s from %s", name, f)
			}
		}
	}
	for k := range kinds(t, out) {
		if !strings.HasPrefix(k, "CustomResourceDefinition/") {
			t.Errorf("CRD chart renders %s", k)
		}
	}
}

// TestRejectsValuesInjectedPodsCannotHonour checks that the Helm values injected proxies
// cannot follow fail the render, naming the value, instead of being silently ignored.
func TestRejectsValuesInjectedPodsCannotHonour(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  map[string]any
		want string
	}{
		{"iptables mode", map[string]any{"proxyInit": map[string]any{"iptablesMode": "iptables"}}, `proxyInit.iptablesMode "iptables": must be legacy or nft`},
		{"admin port", map[string]any{"proxy": map[string]any{"ports": map[string]any{"admin": 5000}}}, "proxy.ports.admin 5000"},
		{"inbound port", map[string]any{"proxy": map[string]any{"ports": map[string]any{"inbound": 4000}}}, "proxy.ports.inbound 4000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := testValues(t)
			for k, v := range tc.set {
				vals[k] = v
			}
			_, err := Render(ControlPlaneChart, Options{Values: vals})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render: %v, want an error naming %q", err, tc.want)
			}
		})
	}
	vals := testValues(t)
	vals["proxyInit"] = map[string]any{"iptablesMode": "nft"}
	out, err := Render(ControlPlaneChart, Options{Values: vals})
	if err != nil || !strings.Contains(string(out), "-iptables-mode=nft") {
		t.Errorf("nft: %v", err)
	}
}

// TestControlPlaneProxiesCallTheirOwnControllersOverLocalhost: as in Linkerd, the proxy
// of the pod that runs a controller calls it over localhost (in plaintext, never leaving
// the pod): the destination pod's proxy its destination and policy controllers, the
// identity pod's proxy its identity controller. Through the headless Services it would
// dial its own pod's address, which its own connections reach without the inbound proxy,
// so the controllers (plaintext behind their proxy) would get mesh TLS. Other pods'
// proxies use the Services.
func TestControlPlaneProxiesCallTheirOwnControllersOverLocalhost(t *testing.T) {
	out, err := Render(ControlPlaneChart, Options{Values: testValues(t)})
	if err != nil {
		t.Fatal(err)
	}
	objs := kinds(t, out)
	const (
		dst      = "linkerd-dst-headless.linkerd.svc.cluster.local.:8086"
		policy   = "linkerd-policy.linkerd.svc.cluster.local.:8090"
		identity = "linkerd-identity-headless.linkerd.svc.cluster.local.:8080"
	)
	for _, tc := range []struct {
		deploy                string
		dst, policy, identity string
	}{
		{"linkerd-destination", "localhost.:8086", "localhost.:8090", identity},
		{"linkerd-identity", dst, policy, "localhost.:8080"},
		{"linkerd-proxy-injector", dst, policy, identity},
	} {
		env := proxyEnv(t, objs["Deployment/"+tc.deploy])
		for name, want := range map[string]string{
			"LINKERD2_PROXY_DESTINATION_SVC_ADDR": tc.dst,
			"LINKERD2_PROXY_POLICY_SVC_ADDR":      tc.policy,
			"LINKERD2_PROXY_IDENTITY_SVC_ADDR":    tc.identity,
		} {
			if env[name] != want {
				t.Errorf("%s: %s=%q, want %q", tc.deploy, name, env[name], want)
			}
		}
	}
}

// proxyEnv returns the literal environment values of the linkerd-proxy container of the
// rendered Deployment d.
func proxyEnv(t *testing.T, d map[string]any) map[string]string {
	t.Helper()
	if d == nil {
		t.Fatal("the Deployment is not rendered")
	}
	spec := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	for _, c := range spec["containers"].([]any) {
		c := c.(map[string]any)
		if c["name"] != "linkerd-proxy" {
			continue
		}
		env := map[string]string{}
		for _, e := range c["env"].([]any) {
			e := e.(map[string]any)
			if v, ok := e["value"].(string); ok {
				env[e["name"].(string)] = v
			}
		}
		return env
	}
	t.Fatal("no linkerd-proxy container")
	return nil
}
