package main

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/l5d-go/l5d/deploy"
	"github.com/l5d-go/l5d/pkg/certs"
	"github.com/l5d-go/l5d/pkg/inject"
)

// chartInjectorArgs renders the control-plane chart with values and returns the arguments
// of the proxy-injector container.
func chartInjectorArgs(t *testing.T, values map[string]any) []string {
	t.Helper()
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := anchor.NewIssuer(certs.IssuerCommonName("cluster.local"), certs.ValidFor(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, err := certs.EncodePrivateKeyPEM(issuer.Key)
	if err != nil {
		t.Fatal(err)
	}
	values["identityTrustAnchorsPEM"] = string(certs.EncodeCertificatesPEM(anchor.Cert))
	values["identity"] = map[string]any{"issuer": map[string]any{"tls": map[string]any{
		"crtPEM": string(certs.EncodeCertificatesPEM(issuer.Cert)), "keyPEM": string(key),
	}}}
	out, err := deploy.Render(deploy.ControlPlaneChart, deploy.Options{Values: values})
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil || d.Kind != "Deployment" || d.Name != "linkerd-proxy-injector" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "proxy-injector" {
				return c.Args
			}
		}
	}
	t.Fatal("no proxy-injector container in the rendered chart")
	return nil
}

// TestChartValuesReachInjectedPods renders the chart with every proxy.* and proxyInit.*
// Helm value set away from its default, starts the injector's configuration from the
// arguments the chart gives it and checks each value in a pod it injects.
func TestChartValuesReachInjectedPods(t *testing.T) {
	args := chartInjectorArgs(t, map[string]any{
		"imagePullPolicy": "Always",
		"linkerdVersion":  "v1.2.3",
		"proxy": map[string]any{
			"image":                  map[string]any{"name": "my-proxy", "version": "v9"},
			"uid":                    2200,
			"logLevel":               "debug",
			"logFormat":              "json",
			"await":                  false,
			"defaultInboundPolicy":   "deny",
			"opaquePorts":            "7000",
			"inboundConnectTimeout":  "250ms",
			"outboundConnectTimeout": "3s",
			"resources": map[string]any{
				"requests": map[string]any{"cpu": "150m", "memory": "40Mi"},
				"limits":   map[string]any{"memory": "90Mi"},
			},
		},
		"proxyInit": map[string]any{
			"image":               map[string]any{"name": "my-init", "version": "v8"},
			"iptablesMode":        "nft",
			"ignoreInboundPorts":  "1111",
			"ignoreOutboundPorts": "2222",
			"resources": map[string]any{
				"requests": map[string]any{"cpu": "10m", "memory": "5Mi"},
				"limits":   map[string]any{"cpu": "20m", "memory": "10Mi"},
			},
		},
	})
	v, _, err := parseFlags(args)
	if err != nil {
		t.Fatalf("the injector rejects the chart's arguments %q: %v", args, err)
	}
	v.IdentityTrustAnchorsPEM = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"
	v.NativeSidecar = false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "n", Annotations: map[string]string{inject.AnnotationInject: "enabled"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 7000}}}}},
	}
	out, _, err := v.InjectPod(inject.Namespace{Name: "n"}, inject.Owner{}, pod)
	if err != nil {
		t.Fatal(err)
	}
	var proxy, init *corev1.Container
	for i := range out.Spec.Containers {
		if out.Spec.Containers[i].Name == inject.ProxyContainerName {
			proxy = &out.Spec.Containers[i]
		}
	}
	for i := range out.Spec.InitContainers {
		if out.Spec.InitContainers[i].Name == inject.InitContainerName {
			init = &out.Spec.InitContainers[i]
		}
	}
	if proxy == nil || init == nil {
		t.Fatalf("not injected: %v", out.Spec)
	}
	env := map[string]string{}
	for _, e := range proxy.Env {
		env[e.Name] = e.Value
	}
	initArgs := strings.Join(init.Args, " ")
	for _, c := range []struct {
		value string
		ok    bool
	}{
		{"imagePullPolicy", proxy.ImagePullPolicy == corev1.PullAlways && init.ImagePullPolicy == corev1.PullAlways},
		{"proxy.image", strings.HasSuffix(proxy.Image, "/my-proxy:v9")},
		{"proxy.uid", *proxy.SecurityContext.RunAsUser == 2200 && strings.Contains(initArgs, "--proxy-uid 2200")},
		{"proxy.logLevel", env["LINKERD2_PROXY_LOG"] == "debug"},
		{"proxy.logFormat", env["LINKERD2_PROXY_LOG_FORMAT"] == "json"},
		{"proxy.await", proxy.Lifecycle == nil || proxy.Lifecycle.PostStart == nil},
		{"proxy.defaultInboundPolicy", env["LINKERD2_PROXY_INBOUND_DEFAULT_POLICY"] == "deny"},
		{"proxy.opaquePorts", env["LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION"] == "7000"},
		{"proxy.inboundConnectTimeout", env["LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT"] == "250ms"},
		{"proxy.outboundConnectTimeout", env["LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT"] == "3000ms"},
		{"proxy.resources", proxy.Resources.Requests.Cpu().String() == "150m" && proxy.Resources.Requests.Memory().String() == "40Mi" && proxy.Resources.Limits.Memory().String() == "90Mi"},
		{"proxyInit.image", strings.HasSuffix(init.Image, "/my-init:v8")},
		{"proxyInit.iptablesMode", strings.Contains(initArgs, "--iptables-mode nft")},
		{"proxyInit.ignoreInboundPorts", strings.Contains(initArgs, "--inbound-ports-to-ignore 4190,4191,1111")},
		{"proxyInit.ignoreOutboundPorts", strings.Contains(initArgs, "--outbound-ports-to-ignore 2222")},
		{"proxyInit.resources", init.Resources.Requests.Cpu().String() == "10m" && init.Resources.Requests.Memory().String() == "5Mi" &&
			init.Resources.Limits.Cpu().String() == "20m" && init.Resources.Limits.Memory().String() == "10Mi"},
	} {
		if !c.ok {
			t.Errorf("Helm value %s does not reach the injected pod (injector args %q)", c.value, args)
		}
	}
}
