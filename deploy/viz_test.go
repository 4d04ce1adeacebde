package deploy

import (
	"strings"
	"testing"
)

// vizObjects are the objects `linkerd viz install` renders by default: the metrics half of
// seed 003's listing, the tap API, the tap injector and the dashboard (web).
var vizObjects = []string{
	"Namespace/linkerd-viz",
	"ClusterRole/linkerd-linkerd-viz-metrics-api", "ClusterRoleBinding/linkerd-linkerd-viz-metrics-api", "ServiceAccount/metrics-api",
	"ClusterRole/linkerd-linkerd-viz-prometheus", "ClusterRoleBinding/linkerd-linkerd-viz-prometheus", "ServiceAccount/prometheus",
	"Server/admin", "AuthorizationPolicy/admin", "NetworkAuthentication/kubelet",
	"Server/proxy-admin", "AuthorizationPolicy/proxy-admin",
	"Service/metrics-api", "Deployment/metrics-api",
	"Server/metrics-api", "AuthorizationPolicy/metrics-api", "MeshTLSAuthentication/metrics-api-web",
	"AuthorizationPolicy/metrics-api-kube-api-server", "NetworkAuthentication/kube-api-server",
	"ConfigMap/prometheus-config", "Service/prometheus", "Deployment/prometheus",
	"ServiceProfile/metrics-api.linkerd-viz.svc.cluster.local", "ServiceProfile/prometheus.linkerd-viz.svc.cluster.local",
	"ClusterRole/linkerd-linkerd-viz-tap", "ClusterRole/linkerd-linkerd-viz-tap-admin", "ClusterRoleBinding/linkerd-linkerd-viz-tap",
	"ClusterRoleBinding/linkerd-linkerd-viz-tap-auth-delegator", "RoleBinding/linkerd-linkerd-viz-tap-auth-reader",
	"ServiceAccount/tap", "Secret/tap-k8s-tls", "APIService/v1alpha1.tap.linkerd.io", "Service/tap", "Deployment/tap",
	"ClusterRole/linkerd-tap-injector", "ClusterRoleBinding/linkerd-tap-injector", "ServiceAccount/tap-injector",
	"Secret/tap-injector-k8s-tls", "Service/tap-injector", "Deployment/tap-injector",
	"MutatingWebhookConfiguration/linkerd-tap-injector-webhook-config",
	"ClusterRole/linkerd-linkerd-viz-web-check", "ClusterRoleBinding/linkerd-linkerd-viz-web-check",
	"ClusterRoleBinding/linkerd-linkerd-viz-web-admin", "ServiceAccount/web", "Service/web", "Deployment/web",
	"Server/web", "AuthorizationPolicy/web",
}

// renderViz renders the chart as `linkerd viz install` does (installNamespace set) with
// values over it.
func renderViz(t *testing.T, values map[string]any) map[string]map[string]any {
	t.Helper()
	v := map[string]any{"installNamespace": true}
	for k, x := range values {
		v[k] = x
	}
	out, err := Render(VizChart, Options{Namespace: "linkerd-viz", Values: v})
	if err != nil {
		t.Fatal(err)
	}
	return kinds(t, out)
}

func TestVizGolden(t *testing.T) {
	out, err := Render(VizChart, Options{Namespace: "linkerd-viz", Values: map[string]any{"installNamespace": true}})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "viz.golden.yaml", mask(out))
}

func TestVizObjects(t *testing.T) {
	objs := renderViz(t, nil)
	for _, want := range vizObjects {
		if objs[want] == nil {
			t.Errorf("viz install does not render %s", want)
		}
	}
	if len(objs) != len(vizObjects) {
		t.Errorf("viz install renders %d objects, want the %d listed", len(objs), len(vizObjects))
	}
	ns := objs["Namespace/linkerd-viz"]["metadata"].(map[string]any)
	if ns["annotations"].(map[string]any)["linkerd.io/inject"] != "enabled" || ns["labels"].(map[string]any)["linkerd.io/extension"] != "viz" {
		t.Errorf("linkerd-viz namespace is not annotated for injection and labelled as the viz extension: %v", ns)
	}
	// Every object carries linkerd.io/extension=viz: uninstall finds cluster-scoped ones by it.
	for k, o := range objs {
		l, _ := o["metadata"].(map[string]any)["labels"].(map[string]any)
		if l["linkerd.io/extension"] != "viz" {
			t.Errorf("%s lacks the linkerd.io/extension=viz label", k)
		}
	}
	args := container(t, objs, "metrics-api", "metrics-api")["args"].([]any)
	want := []string{"-addr=:8085", "-admin-addr=:9995", "-prometheus-url=http://prometheus.linkerd-viz.svc.cluster.local:9090",
		"-controller-namespace=linkerd", "-cluster-domain=cluster.local", "-log-level=info"}
	for i, w := range want {
		if args[i] != w {
			t.Errorf("metrics-api arg %d = %v, want %s", i, args[i], w)
		}
	}
	if img := container(t, objs, "metrics-api", "metrics-api")["image"]; img != "ghcr.io/l5d-go/metrics-api:dev" {
		t.Errorf("metrics-api image %v", img)
	}
	if img := container(t, objs, "prometheus", "prometheus")["image"]; img != "prom/prometheus:v3.16.0" {
		t.Errorf("prometheus image %v", img)
	}
}

// container returns a Deployment's container by name.
func container(t *testing.T, objs map[string]map[string]any, deploy, name string) map[string]any {
	t.Helper()
	d := objs["Deployment/"+deploy]
	if d == nil {
		t.Fatalf("no Deployment/%s", deploy)
	}
	for _, c := range d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any) {
		if c.(map[string]any)["name"] == name {
			return c.(map[string]any)
		}
	}
	t.Fatalf("Deployment/%s has no container %s", deploy, name)
	return nil
}

func TestVizValues(t *testing.T) {
	t.Run("external prometheus", func(t *testing.T) {
		objs := renderViz(t, map[string]any{
			"prometheusUrl": "http://prom.monitoring:9090",
			"prometheus":    map[string]any{"enabled": false},
		})
		for k := range objs {
			if strings.Contains(k, "prometheus") {
				t.Errorf("prometheus.enabled=false still renders %s", k)
			}
		}
		args := container(t, objs, "metrics-api", "metrics-api")["args"].([]any)
		if args[2] != "-prometheus-url=http://prom.monitoring:9090" {
			t.Errorf("metrics-api %v, want the given prometheusUrl", args[2])
		}
		ns := objs["Namespace/linkerd-viz"]["metadata"].(map[string]any)["annotations"].(map[string]any)
		if ns["viz.linkerd.io/external-prometheus"] != "http://prom.monitoring:9090" {
			t.Errorf("namespace annotations %v lack viz.linkerd.io/external-prometheus", ns)
		}
	})
	t.Run("settings", func(t *testing.T) {
		objs := renderViz(t, map[string]any{
			"linkerdNamespace": "mesh", "clusterDomain": "example.org", "defaultRegistry": "reg.local/l5d", "linkerdVersion": "v9",
			"metricsAPI": map[string]any{"replicas": 2},
			"prometheus": map[string]any{"args": map[string]any{"storage.tsdb.retention.time": "2h"}},
		})
		if objs["Deployment/metrics-api"]["spec"].(map[string]any)["replicas"] != float64(2) {
			t.Error("metricsAPI.replicas ignored")
		}
		c := container(t, objs, "metrics-api", "metrics-api")
		if c["image"] != "reg.local/l5d/metrics-api:v9" || c["args"].([]any)[3] != "-controller-namespace=mesh" {
			t.Errorf("metrics-api %v %v", c["image"], c["args"])
		}
		p := strings.Join(func() []string {
			var s []string
			for _, a := range container(t, objs, "prometheus", "prometheus")["args"].([]any) {
				s = append(s, a.(string))
			}
			return s
		}(), " ")
		if !strings.Contains(p, "--storage.tsdb.retention.time=2h") || !strings.Contains(p, "--config.file=/etc/prometheus/prometheus.yml") {
			t.Errorf("prometheus args %s", p)
		}
		cfg := objs["ConfigMap/prometheus-config"]["data"].(map[string]any)["prometheus.yml"].(string)
		if !strings.Contains(cfg, "regex: linkerd-proxy;linkerd-admin;mesh") || !strings.Contains(cfg, `names: ["mesh", "linkerd-viz"]`) {
			t.Errorf("prometheus config does not follow linkerdNamespace:\n%s", cfg)
		}
		if objs["ServiceProfile/prometheus.linkerd-viz.svc.example.org"] == nil {
			t.Error("ServiceProfiles do not follow clusterDomain")
		}
	})
	t.Run("helm defaults", func(t *testing.T) {
		out, err := Render(VizChart, Options{Namespace: "linkerd-viz"})
		if err != nil {
			t.Fatal(err)
		}
		objs := kinds(t, out)
		if objs["Namespace/linkerd-viz"] != nil {
			t.Error("the chart renders the Namespace without installNamespace")
		}
		if img := container(t, objs, "metrics-api", "metrics-api")["image"]; img != "ghcr.io/l5d-go/metrics-api:dev" {
			t.Errorf("metrics-api image %v, want the chart's appVersion as tag", img)
		}
	})
	t.Run("no prometheus at all", func(t *testing.T) {
		_, err := Render(VizChart, Options{Namespace: "linkerd-viz", Values: map[string]any{"prometheus": map[string]any{"enabled": false}}})
		if err == nil || !strings.Contains(err.Error(), "prometheusUrl") {
			t.Fatalf("err = %v, want one naming prometheusUrl", err)
		}
	})
}
