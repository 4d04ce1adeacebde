package resource

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/test/kube"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

func TestParse(t *testing.T) {
	for in, want := range map[string]Ref{
		"deploy/web":        {Deployment, "web"},
		"deployments/web":   {Deployment, "web"},
		"po/web-0":          {Pod, "web-0"},
		"web-0":             {Pod, "web-0"},
		"svc/web":           {Service, "web"},
		"sts/db":            {StatefulSet, "db"},
		"ns/emojivoto":      {Namespace, "emojivoto"},
		"Deployment/web":    {Deployment, "web"},
		"daemonset/logger":  {DaemonSet, "logger"},
		"replicasets/web-1": {ReplicaSet, "web-1"},
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"":              "want KIND/NAME",
		"deploy/":       "want KIND/NAME",
		"cronjob/x":     "unknown resource kind \"cronjob\"",
		"deploy/a/b":    "want KIND/NAME",
		"/web":          "unknown resource kind",
		"widgets/thing": "unknown resource kind",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("Parse(%q): err = %v, want %q", in, err, why)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"deploy/web", "web", "svc/", "a/b/c", "NS/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := Parse(in)
		if err == nil && (r.Name == "" || r.Kind == "" || strings.Contains(r.Name, "/")) {
			t.Fatalf("Parse(%q) = %+v without an error", in, r)
		}
	})
}

func pod(ns, name, app string, meshed bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "app"}}}}
	if meshed {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: ProxyContainer, Image: "proxy"})
	}
	return p
}

func names(pods []corev1.Pod) string {
	var n []string
	for _, p := range pods {
		n = append(n, p.Name)
	}
	return strings.Join(n, ",")
}

// TestPodsFromTheAPIServer selects pods the way the CLI's resource arguments do, from a
// real API server: by a Deployment's and a Service's selector, by name, and a whole
// namespace, leaving out finished pods and naming what is missing.
func TestPodsFromTheAPIServer(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	ctx := context.Background()
	labels := map[string]string{"app": "web"}
	if _, err := c.Client().AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "external", Namespace: ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.CreatePod(t, pod(ns, "web-b", "web", true))
	c.CreatePod(t, pod(ns, "web-a", "web", false))
	c.CreatePod(t, pod(ns, "web-done", "web", true))
	c.CreatePod(t, pod(ns, "db-0", "db", true))
	c.SetPodStatus(t, ns, "web-done", kube.PodStatus{Phase: corev1.PodSucceeded})

	for arg, want := range map[string]string{
		"deploy/web":    "web-a,web-b",
		"svc/web":       "web-a,web-b",
		"db-0":          "db-0",
		"pod/web-done":  "web-done",
		"ns/" + ns:      "db-0,web-a,web-b",
		"deploy/nope":   "deployment/nope in namespace " + ns + ": deployments.apps \"nope\" not found",
		"nope":          "pod " + ns + "/nope:",
		"svc/external":  "service/external in namespace " + ns + " has no pod selector",
		"sts/web":       "statefulset/web in namespace " + ns + ":",
		"ds/web":        "daemonset/web in namespace " + ns + ":",
		"job/web":       "job/web in namespace " + ns + ":",
		"replicaset/rs": "replicaset/rs in namespace " + ns + ":",
	} {
		ref, err := Parse(arg)
		if err != nil {
			t.Fatal(err)
		}
		pods, err := Pods(ctx, c.Client(), ns, ref)
		got := names(pods)
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, want) {
			t.Errorf("%s: got %q, want %q", arg, got, want)
		}
	}
	all, err := Pods(ctx, c.Client(), ns, Ref{Kind: Pod})
	if err != nil || names(all) != "db-0,web-a,web-b" {
		t.Errorf("every pod of the namespace: %s %v", names(all), err)
	}
	meshed := slices.DeleteFunc(all, func(p corev1.Pod) bool { return !Meshed(&p) })
	if names(meshed) != "db-0,web-b" {
		t.Errorf("meshed pods %s, want db-0 and web-b", names(meshed))
	}

	// The control-plane pod the diagnostics forward to: running, ready preferred.
	cp := pod(ns, "linkerd-destination-1", "destination", true)
	cp.Labels["linkerd.io/control-plane-component"] = "destination"
	c.CreatePod(t, cp)
	if _, err := ControlPlanePod(ctx, c.Client(), ns, "destination"); err == nil || !strings.Contains(err.Error(), "no running linkerd-destination pod in namespace "+ns) {
		t.Errorf("pending destination pod: err = %v", err)
	}
	c.SetPodStatus(t, ns, "linkerd-destination-1", kube.PodStatus{IPs: []string{"10.244.1.2"}, Ready: false})
	cp2 := cp.DeepCopy()
	cp2.Name, cp2.ResourceVersion = "linkerd-destination-2", ""
	c.CreatePod(t, cp2)
	c.SetPodStatus(t, ns, "linkerd-destination-2", kube.PodStatus{IPs: []string{"10.244.1.3"}, Ready: true})
	if got, err := ControlPlanePod(ctx, c.Client(), ns, "destination"); err != nil || got != "linkerd-destination-2" {
		t.Errorf("destination pod %q %v, want the ready linkerd-destination-2", got, err)
	}
}
