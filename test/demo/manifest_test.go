package demo_test

import (
	"os"
	"path"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestManifests checks app.yaml as the node agent and the mesh will read it: a meshed
// namespace, and per component a ServiceAccount, a Service whose ports and selector match
// the pods, and a Deployment whose image names one of the demo commands.
func TestManifests(t *testing.T) {
	b, err := os.ReadFile("app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var (
		ns       *corev1.Namespace
		sas      = map[string]bool{}
		services = map[string]*corev1.Service{}
		deps     []*appsv1.Deployment
	)
	for i, doc := range strings.Split(string(b), "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		switch o := obj.(type) {
		case *corev1.Namespace:
			ns = o
		case *corev1.ServiceAccount:
			sas[o.Name] = true
		case *corev1.Service:
			services[o.Name] = o
		case *appsv1.Deployment:
			deps = append(deps, o)
		default:
			t.Errorf("document %d: unexpected %T", i, obj)
		}
	}
	if ns == nil || ns.Name != "l5d-demo" || ns.Annotations["linkerd.io/inject"] != "enabled" {
		t.Fatalf("namespace %v, want l5d-demo annotated linkerd.io/inject: enabled", ns)
	}
	if len(deps) != 4 {
		t.Errorf("%d deployments, want web, catalog, ratings and traffic", len(deps))
	}
	for _, d := range deps {
		pod := d.Spec.Template
		if d.Namespace != "l5d-demo" || pod.Labels["app"] != d.Name || pod.Labels["version"] == "" {
			t.Errorf("deployment %s/%s: pods labelled %v, want app=%s and a version", d.Namespace, d.Name, pod.Labels, d.Name)
		}
		if !sas[pod.Spec.ServiceAccountName] || pod.Spec.ServiceAccountName != d.Name {
			t.Errorf("deployment %s runs as service account %q, want its own", d.Name, pod.Spec.ServiceAccountName)
		}
		c := pod.Spec.Containers[0]
		base := path.Base(c.Image)
		base = base[:strings.IndexByte(base+":", ':')]
		if _, err := os.Stat("cmd/" + base + "/main.go"); err != nil || base != "demo-"+d.Name {
			t.Errorf("deployment %s: image %s does not name the command test/demo/cmd/demo-%s", d.Name, c.Image, d.Name)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
			t.Errorf("deployment %s: no HTTP readiness probe", d.Name)
		}
		svc := services[d.Name]
		if svc == nil {
			t.Errorf("deployment %s has no Service", d.Name)
			continue
		}
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("service %s selects %v, not the pods labelled %v", svc.Name, svc.Spec.Selector, pod.Labels)
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
		for _, p := range svc.Spec.Ports {
			if !ports[p.TargetPort.StrVal] {
				t.Errorf("service %s port %s targets %q, which deployment %s does not name", svc.Name, p.Name, p.TargetPort.StrVal, d.Name)
			}
		}
		if probe := c.ReadinessProbe; probe != nil && probe.HTTPGet != nil && !ports[probe.HTTPGet.Port.StrVal] {
			t.Errorf("deployment %s probes port %q, which it does not name", d.Name, probe.HTTPGet.Port.StrVal)
		}
	}
}
