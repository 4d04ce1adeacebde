package goldenmetrics

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/cli/resource"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

func deployment(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: "ghcr.io/l5d-go/demo-" + name + ":v1"}}},
			},
		},
	}
}

func pod(ns, name, app string, meshed bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "ghcr.io/l5d-go/demo-" + app + ":v1"}}}}
	if meshed {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: resource.ProxyContainer, Image: "cr.l5d.io/linkerd/proxy:dev"})
	}
	return p
}

// TestScrapeThroughAPIServer lists deployments and pods from a real API server, counts
// meshed pods per deployment, and asks the API server's pods/proxy for the proxy metrics
// of running meshed pods. This API server has no route to pods, so the scrape of the one
// running meshed pod fails: the failure must name that pod and not stop the others.
func TestScrapeThroughAPIServer(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	ctx := context.Background()
	for _, name := range []string{"web", "catalog"} {
		if _, err := c.Client().AppsV1().Deployments(ns).Create(ctx, deployment(ns, name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.CreatePod(t, pod(ns, "web-meshed", "web", true))
	c.CreatePod(t, pod(ns, "web-plain", "web", false))
	c.CreatePod(t, pod(ns, "web-done", "web", true))
	c.CreatePod(t, pod(ns, "catalog-pending", "catalog", true))
	c.CreatePod(t, pod(ns, "stray", "other", true))
	c.SetPodStatus(t, ns, "web-meshed", kube.PodStatus{IPs: []string{"127.0.0.1"}, Ready: true})
	c.SetPodStatus(t, ns, "web-plain", kube.PodStatus{IPs: []string{"127.0.0.2"}, Ready: true})
	c.SetPodStatus(t, ns, "web-done", kube.PodStatus{IPs: []string{"127.0.0.3"}, Phase: corev1.PodSucceeded})

	s := &Scraper{Client: c.Client(), Namespace: ns}
	snap, err := s.Scrape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Resources) != 2 || snap.Resources[0].Name != "catalog" || snap.Resources[1].Name != "web" {
		t.Fatalf("deployments %+v, want catalog and web in order", snap.Resources)
	}
	cat, web := snap.Resources[0], snap.Resources[1]
	if cat.Pods != 1 || cat.Meshed != 1 || len(cat.Errors) != 0 || len(cat.Counters) != 0 {
		t.Errorf("catalog %+v, want 1/1 meshed, a pending pod neither scraped nor failed", cat)
	}
	if web.Pods != 2 || web.Meshed != 1 {
		t.Errorf("web has %d/%d meshed pods, want 1/2 (the finished pod does not count)", web.Meshed, web.Pods)
	}
	if len(web.Errors) != 1 || !strings.Contains(web.Errors[0].Error(), ns+"/web-meshed") ||
		!strings.Contains(web.Errors[0].Error(), "port 4191") {
		t.Errorf("web scrape errors %v, want one naming pod %s/web-meshed and its admin port", web.Errors, ns)
	} else {
		t.Logf("API server answer: %v", web.Errors[0])
	}
	rows := Stats(snap, snap)
	if len(rows) != 2 || rows[1].Name != "web" || rows[1].Responses != 0 || rows[1].Meshed != 1 || rows[1].Pods != 2 {
		t.Errorf("rows %+v, want web 1/2 meshed without traffic", rows)
	}
}

// TestScrapeGroupsByKind groups the same pods by pod and by namespace, and limits the
// scrape to one named resource.
func TestScrapeGroupsByKind(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	ctx := context.Background()
	if _, err := c.Client().AppsV1().Deployments(ns).Create(ctx, deployment(ns, "web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.CreatePod(t, pod(ns, "web-b", "web", true))
	c.CreatePod(t, pod(ns, "web-a", "web", false))
	c.CreatePod(t, pod(ns, "db-0", "db", true))
	for name, sel := range map[string]map[string]string{"web": {"app": "web"}, "bare": nil} {
		if _, err := c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(s *Scraper) string {
		t.Helper()
		snap, err := s.Scrape(ctx)
		if err != nil {
			return err.Error()
		}
		var out []string
		for _, r := range snap.Resources {
			out = append(out, fmt.Sprintf("%s %d/%d", r.Name, r.Meshed, r.Pods))
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		s    *Scraper
		want string
	}{
		{&Scraper{Client: c.Client(), Namespace: ns}, "web 1/2"},
		{&Scraper{Client: c.Client(), Namespace: ns, Kind: resource.Deployment, Name: "web"}, "web 1/2"},
		{&Scraper{Client: c.Client(), Namespace: ns, Kind: resource.Pod}, "db-0 1/1,web-a 0/1,web-b 1/1"},
		{&Scraper{Client: c.Client(), Namespace: ns, Kind: resource.Pod, Name: "web-a"}, "web-a 0/1"},
		{&Scraper{Client: c.Client(), Namespace: ns, Kind: resource.Namespace}, ns + " 2/3"},
		{&Scraper{Client: c.Client(), Kind: resource.Namespace, Name: ns}, ns + " 2/3"},
		{&Scraper{Client: c.Client(), Namespace: ns, Kind: resource.Deployment, Name: "nope"}, "deployment " + ns + "/nope: "},
		{&Scraper{Client: c.Client(), Namespace: ns, Kind: resource.Pod, Name: "nope"}, "pod " + ns + "/nope: not found"},
		{&Scraper{Client: c.Client(), Kind: resource.Namespace, Name: ns + "-nope"}, "namespace " + ns + "-nope: "},
		{&Scraper{Client: c.Client(), Namespace: ns, Kind: resource.Service}, "bare 0/0,web 1/2"},
		{&Scraper{Client: c.Client(), Namespace: ns, Kind: resource.Service, Name: "web"}, "web 1/2"},
		{&Scraper{Client: c.Client(), Namespace: ns, Kind: resource.StatefulSet}, `resource kind "statefulset": stat covers deployments, services, pods and namespaces`},
	} {
		if got := rows(tc.s); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%+v: got %q, want %q", *tc.s, got, tc.want)
		}
	}
	snap, err := (&Scraper{Client: c.Client(), Kind: resource.Namespace}).Scrape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range snap.Resources {
		found = found || r.Name == ns && r.Pods == 3
	}
	if !found {
		t.Errorf("every namespace: %s with 3 pods missing from %+v", ns, snap.Resources)
	}
}
