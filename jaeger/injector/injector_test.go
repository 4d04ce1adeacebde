package injector_test

import (
	"io"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/jaeger/injector"
	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

func proxyEnv(p *corev1.Pod) map[string]string {
	env := map[string]string{}
	for _, list := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range list {
			if c.Name != inject.ProxyContainerName {
				continue
			}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			for _, m := range c.VolumeMounts {
				if m.Name == injector.PodinfoVolume {
					env["mount"] = m.MountPath
				}
			}
		}
	}
	return env
}

// TestJaegerInjector registers the injector with the real API server and creates pods
// through it: meshed pods get the trace configuration pointing at the default collector,
// or at the one the namespace's or the pod's annotations name; unmeshed pods and pods
// already configured are left alone.
func TestJaegerInjector(t *testing.T) {
	c := kube.Shared(t)
	dflt := c.Namespace(t)
	custom := c.Namespace(t, func(n *corev1.Namespace) {
		n.Annotations = map[string]string{proxyconf.AnnTraceCollector: "otel.tracing:4317",
			proxyconf.AnnTraceCollectorServiceAccount: "otel"}
	})
	inj := &injector.Injector{CollectorAddr: "collector.linkerd-jaeger:4317", CollectorServiceAccount: "collector",
		ServiceName: "linkerd-proxy", LinkerdNamespace: "linkerd", TrustDomain: "cluster.local",
		Kube: c.Client(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := kube.ServeHTTPS(t, inj)
	c.RegisterMutatingWebhook(t, kube.Webhook{Name: "jaeger-injector.linkerd.io", URL: srv.URL, CABundle: srv.CABundle, Namespaces: []string{dflt, custom}})

	meshed := func(ns, name string, annotations map[string]string, native bool, env ...corev1.EnvVar) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}
		proxy := corev1.Container{Name: inject.ProxyContainerName, Image: "proxy",
			Env: append([]corev1.EnvVar{{Name: "LINKERD2_PROXY_LOG", Value: "info"}}, env...)}
		if native {
			always := corev1.ContainerRestartPolicyAlways
			proxy.RestartPolicy = &always
			p.Spec.InitContainers = []corev1.Container{proxy}
		} else {
			p.Spec.Containers = append(p.Spec.Containers, proxy)
		}
		return p
	}
	const defaultID = "collector.linkerd-jaeger.serviceaccount.identity.linkerd.cluster.local"
	for _, tc := range []struct {
		name     string
		pod      *corev1.Pod
		addr, id string
	}{
		{"meshed", meshed(dflt, "web", nil, false), "collector.linkerd-jaeger:4317", defaultID},
		{"native sidecar", meshed(dflt, "native", nil, true), "collector.linkerd-jaeger:4317", defaultID},
		{"namespace names the collector", meshed(custom, "web", nil, false), "otel.tracing:4317",
			"otel.tracing.serviceaccount.identity.linkerd.cluster.local"},
		{"pod overrides the namespace", meshed(custom, "own", map[string]string{proxyconf.AnnTraceCollector: "mine:4317"}, false),
			"mine:4317", "otel." + custom + ".serviceaccount.identity.linkerd.cluster.local"},
		{"already configured", meshed(dflt, "manual", nil, false, corev1.EnvVar{Name: proxyconf.EnvTraceCollectorAddr, Value: "elsewhere:4317"}),
			"elsewhere:4317", ""},
		{"not meshed", &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: dflt},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := c.CreatePod(t, tc.pod)
			env := proxyEnv(got)
			if env[proxyconf.EnvTraceCollectorAddr] != tc.addr || env[proxyconf.EnvTraceCollectorName] != tc.id {
				t.Fatalf("collector %q %q, want %q %q", env[proxyconf.EnvTraceCollectorAddr], env[proxyconf.EnvTraceCollectorName], tc.addr, tc.id)
			}
			if tc.id == "" {
				if got.Annotations[proxyconf.AnnTracingEnabled] != "" {
					t.Error("pod left alone is annotated")
				}
				return
			}
			if got.Annotations[proxyconf.AnnTracingEnabled] != "true" {
				t.Errorf("annotations %v: want %s", got.Annotations, proxyconf.AnnTracingEnabled)
			}
			want := map[string]string{
				proxyconf.EnvTraceProtocol:        "opentelemetry",
				proxyconf.EnvTraceServiceName:     "linkerd-proxy",
				proxyconf.EnvTraceAttributesPath:  "/var/run/linkerd/podinfo/labels",
				proxyconf.EnvTraceExtraAttributes: "k8s.pod.uid=$(_pod_uid)\nk8s.container.name=$(_pod_containerName)",
				"_pod_containerName":              "linkerd-proxy",
				"mount":                           "/var/run/linkerd/podinfo",
			}
			for k, v := range want {
				if env[k] != v {
					t.Errorf("%s = %q, want %q", k, env[k], v)
				}
			}
			found := false
			for _, v := range got.Spec.Volumes {
				if v.Name == injector.PodinfoVolume && v.DownwardAPI != nil && v.DownwardAPI.Items[0].FieldRef.FieldPath == "metadata.labels" {
					found = true
				}
			}
			if !found {
				t.Errorf("no downward API volume %s of the pod's labels: %v", injector.PodinfoVolume, got.Spec.Volumes)
			}
		})
	}
}
