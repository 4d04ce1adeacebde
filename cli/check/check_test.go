package check

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

func results(rep Report) map[string]string {
	m := map[string]string{}
	for _, c := range rep.Categories {
		for _, r := range c.Checks {
			m[c.Name+"/"+r.Name] = r.Result
		}
	}
	return m
}

// TestCheckAgainstInstalledControlPlane applies the rendered CRDs and control plane to a
// real API server (no component pods run: there is no kubelet) and runs the checks.
func TestCheckAgainstInstalledControlPlane(t *testing.T) {
	c := kube.Shared(t)
	ctx := context.Background()
	ns := "l5d-check"

	pre := Run(ctx, c.Client(), c.Dynamic(), Options{Pre: true, Namespace: ns})
	if !pre.Success {
		var b bytes.Buffer
		WriteTable(&b, pre)
		t.Fatalf("pre-install checks fail on an empty cluster:\n%s", b.String())
	}

	crds, err := install.Render(install.Options{CRDs: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", string(crds))
	cp, err := install.Render(install.Options{Namespace: ns, Sets: []string{"profileValidator.enabled=true,policyValidator.enabled=true"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, ns, string(cp))

	rep := Run(ctx, c.Client(), c.Dynamic(), Options{Namespace: ns})
	got := results(rep)
	want := map[string]string{
		"kubernetes-api/can query the Kubernetes API":                                         "success",
		"linkerd-existence/'linkerd-config' config map exists":                                "success",
		"linkerd-existence/control plane pods are ready":                                      "error",
		"linkerd-config/control plane ClusterRoles exist":                                     "success",
		"linkerd-config/control plane CustomResourceDefinitions exist":                        "success",
		"linkerd-config/control plane ValidatingWebhookConfigurations exist":                  "success",
		"linkerd-identity/issuer cert is issued by the trust anchor":                          "success",
		"linkerd-identity/trust anchors are valid for at least 60 days":                       "success",
		"linkerd-webhooks-and-apisvc-tls/proxy-injector webhook has valid cert":               "success",
		"linkerd-webhooks-and-apisvc-tls/policy-validator cert is valid for at least 60 days": "success",
		"linkerd-webhooks-and-apisvc-tls/sp-validator webhook has valid cert":                 "success",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if rep.Success {
		t.Error("report succeeds although no control-plane pod is ready")
	}
	var b bytes.Buffer
	WriteTable(&b, rep)
	for _, s := range []string{"linkerd-identity\n----------------\n√ certificate config is valid", "× control plane pods are ready", "see https://linkerd.io/2/checks/#", "Status check results are ×"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table output lacks %q:\n%s", s, b.String())
		}
	}

	// 50 days from now the 1-year certificates are fine; 300 days on they warn.
	later := Run(ctx, c.Client(), c.Dynamic(), Options{Namespace: ns, Now: func() time.Time { return time.Now().Add(320 * 24 * time.Hour) }})
	if r := results(later)["linkerd-identity/issuer cert is valid for at least 60 days"]; r != "warning" {
		t.Errorf("issuer expiring in 45 days: %q, want warning", r)
	}

	pre = Run(ctx, c.Client(), c.Dynamic(), Options{Pre: true, Namespace: ns})
	if results(pre)["pre-kubernetes-setup/control plane namespace does not already exist"] != "error" || pre.Success {
		t.Error("check --pre passes with the control plane installed")
	}
}

// TestWebhooksFollowInstall checks that the validator checks run for the webhooks the
// installed chart enables (here the sp-validator, and not the policy validator, turned off).
func TestWebhooksFollowInstall(t *testing.T) {
	c := kube.Shared(t)
	ns := "l5d-check-minimal"
	cp, err := install.Render(install.Options{Namespace: ns, Sets: []string{"policyValidator.enabled=false"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, ns, string(cp))
	got := results(Run(context.Background(), c.Client(), c.Dynamic(), Options{Namespace: ns}))
	if got["linkerd-webhooks-and-apisvc-tls/proxy-injector webhook has valid cert"] != "success" {
		t.Errorf("proxy-injector cert: %q", got["linkerd-webhooks-and-apisvc-tls/proxy-injector webhook has valid cert"])
	}
	if got["linkerd-webhooks-and-apisvc-tls/sp-validator webhook has valid cert"] != "success" {
		t.Errorf("sp-validator cert: %q", got["linkerd-webhooks-and-apisvc-tls/sp-validator webhook has valid cert"])
	}
	for k := range got {
		if strings.Contains(k, "policy-validator") {
			t.Errorf("%s checked although the install does not enable the policy validator", k)
		}
	}
	if got["linkerd-config/control plane ValidatingWebhookConfigurations exist"] != "success" {
		t.Error("the sp-validator's ValidatingWebhookConfiguration is not found")
	}
}

func meshedPod(name, ns string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels,
			Annotations: map[string]string{"linkerd.io/proxy-version": "dev"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "linkerd-proxy", Image: "proxy"}, {Name: "app", Image: "app"},
		}},
	}
}

// installReady applies the CRDs and a control plane in ns and stands in for a kubelet: one
// ready pod (with a proxy container) per component.
func installReady(t *testing.T, c *kube.Cluster, ns string) {
	t.Helper()
	crds, err := install.Render(install.Options{CRDs: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", string(crds))
	cp, err := install.Render(install.Options{Namespace: ns}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, ns, string(cp))
	for _, comp := range []string{"identity", "destination", "proxy-injector"} {
		pod := meshedPod("linkerd-"+comp+"-0", ns, map[string]string{"linkerd.io/control-plane-component": comp})
		pod.Spec.ServiceAccountName = "linkerd-" + comp
		p := c.CreatePod(t, pod)
		c.SetPodStatus(t, ns, p.Name, kube.PodStatus{Ready: true, IPs: []string{"10.244.9.1"}})
	}
}

// TestHealthyInstall stands in for a kubelet: control-plane and workload pods reported
// ready make every check pass; an unready workload proxy fails --proxy.
func TestHealthyInstall(t *testing.T) {
	c := kube.Shared(t)
	ctx := context.Background()
	ns := "l5d-check-healthy"
	installReady(t, c, ns)
	app := c.Namespace(t)
	c.CreatePod(t, meshedPod("web", app, nil))
	c.SetPodStatus(t, app, "web", kube.PodStatus{Ready: true, IPs: []string{"10.244.9.2"}})

	o := Options{Namespace: ns, Proxy: true, DataPlaneNamespace: app, CLIVersion: "dev"}
	rep := Run(ctx, c.Client(), c.Dynamic(), o)
	if !rep.Success {
		var b bytes.Buffer
		WriteTable(&b, rep)
		t.Fatalf("checks fail on a healthy install:\n%s", b.String())
	}
	got := results(rep)
	for _, k := range []string{"control-plane-version/control plane and cli versions match", "linkerd-data-plane/data plane proxies are ready", "linkerd-data-plane/data plane and cli versions match"} {
		if got[k] != "success" {
			t.Errorf("%s: %q", k, got[k])
		}
	}

	o.CLIVersion = "other"
	if got := results(Run(ctx, c.Client(), c.Dynamic(), o)); got["control-plane-version/control plane and cli versions match"] != "warning" ||
		got["linkerd-data-plane/data plane and cli versions match"] != "warning" {
		t.Errorf("version mismatch not warned: %v", got)
	}

	o.CLIVersion = "dev"
	c.CreatePod(t, meshedPod("slow", app, nil))
	c.SetPodStatus(t, app, "slow", kube.PodStatus{Ready: false, IPs: []string{"10.244.9.3"}})
	rep = Run(ctx, c.Client(), c.Dynamic(), o)
	if rep.Success || results(rep)["linkerd-data-plane/data plane proxies are ready"] != "error" {
		t.Error("unready proxy passes check --proxy")
	}
	o.DataPlaneNamespace = "no-such-ns"
	if results(Run(ctx, c.Client(), c.Dynamic(), o))["linkerd-data-plane/data plane namespace exists"] != "error" {
		t.Error("missing data-plane namespace not reported")
	}
}
