package command

import (
	"context"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/test/kube"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testPod(ns, name string, labels map[string]string, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{Containers: containers}}
}

// TestDiagnosticsSelectPodsThroughTheAPIServer runs proxy-metrics, controller-metrics,
// identity and endpoints against a real API server. It has no route to pods (pods/proxy
// refuses their loopback addresses) and no kubelet, so every read fails: the commands
// must print each pod's header as Linkerd does, say which pod and port failed, and
// exit non-zero; the selection itself is what is checked.
func TestDiagnosticsSelectPodsThroughTheAPIServer(t *testing.T) {
	c := kube.Shared(t)
	kc := c.Kubeconfig()
	ns := c.Namespace(t)
	ctx := context.Background()
	app := corev1.Container{Name: "web", Image: "web"}
	proxy := corev1.Container{Name: "linkerd-proxy", Image: "proxy"}
	for name, meshed := range map[string]bool{"web": true, "plain": false} {
		labels := map[string]string{"app": name}
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{app}}}
		if _, err := c.Client().AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cs := []corev1.Container{app}
		if meshed {
			cs = append(cs, proxy)
		}
		c.CreatePod(t, testPod(ns, name+"-1", labels, cs...))
		c.SetPodStatus(t, ns, name+"-1", kube.PodStatus{IPs: []string{"127.0.0.1"}, Ready: true})
	}

	out, _, err := run(t, "", "diagnostics", "proxy-metrics", "--kubeconfig", kc, "-n", ns, "deploy/web")
	if !strings.HasPrefix(out, "#\n# POD web-1 (1 of 1)\n#\n# ERROR GET /metrics on pod "+ns+"/web-1 port 4191 through the API server") {
		t.Errorf("proxy-metrics deploy/web output:\n%s", out)
	}
	if err == nil || !strings.Contains(err.Error(), "1 of 1 admin endpoints could not be read") {
		t.Errorf("proxy-metrics deploy/web: err = %v", err)
	}
	if _, _, err := run(t, "", "diagnostics", "proxy-metrics", "--kubeconfig", kc, "-n", ns, "deploy/plain"); err == nil ||
		!strings.Contains(err.Error(), "no meshed pod among the 1 pods selected") {
		t.Errorf("proxy-metrics of an unmeshed deployment: err = %v", err)
	}
	if _, _, err := run(t, "", "diagnostics", "proxy-metrics", "--kubeconfig", kc, "-n", ns, "cronjob/x"); err == nil ||
		!strings.Contains(err.Error(), `unknown resource kind "cronjob"`) {
		t.Errorf("proxy-metrics of a bad kind: err = %v", err)
	}

	out, _, err = run(t, "", "identity", "--kubeconfig", kc, "-n", ns, "web-1", "plain-1")
	if !strings.HasPrefix(out, "POD web-1 (1 of 2)\n\nError: GET /identity/certificate on pod "+ns+"/web-1 port 4191") ||
		!strings.Contains(out, "\nPOD plain-1 (2 of 2)\n\nThe pod has no linkerd-proxy container: it is not meshed.\n") {
		t.Errorf("identity output:\n%s", out)
	}
	if err == nil || !strings.Contains(err.Error(), "2 of 2 pods have no certificate to show") {
		t.Errorf("identity: err = %v", err)
	}

	// A control plane of two pods: destination with two admin containers, and identity.
	cp := c.Namespace(t)
	adminPort := func(name string, port int32) corev1.Container {
		return corev1.Container{Name: name, Image: name, Ports: []corev1.ContainerPort{{Name: "admin-http", ContainerPort: port}, {Name: "grpc", ContainerPort: 8086}}}
	}
	dst := testPod(cp, "linkerd-destination-1", map[string]string{"linkerd.io/control-plane-component": "destination"},
		adminPort("destination", 9996), adminPort("policy", 9990), corev1.Container{Name: "linkerd-proxy", Image: "proxy", Ports: []corev1.ContainerPort{{Name: "linkerd-admin", ContainerPort: 4191}}})
	c.CreatePod(t, dst)
	c.CreatePod(t, testPod(cp, "linkerd-identity-1", map[string]string{"linkerd.io/control-plane-component": "identity"},
		corev1.Container{Name: "identity", Image: "identity", Ports: []corev1.ContainerPort{{ContainerPort: 9990}}}))
	if _, _, err := run(t, "", "diagnostics", "endpoints", "--kubeconfig", kc, "-L", cp, "web.emojivoto.svc.cluster.local:80"); err == nil ||
		!strings.Contains(err.Error(), "no running linkerd-destination pod in namespace "+cp) {
		t.Errorf("endpoints without a running destination pod: err = %v", err)
	}
	out, _, err = run(t, "", "diagnostics", "controller-metrics", "--kubeconfig", kc, "-L", cp)
	var headers []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "# POD") || strings.HasPrefix(l, "# CONTAINER") {
			headers = append(headers, l)
		}
	}
	if want := "# POD linkerd-destination-1 (1 of 2)|# CONTAINER destination|# POD linkerd-destination-1 (1 of 2)|# CONTAINER policy|# POD linkerd-identity-1 (2 of 2)|# CONTAINER identity"; strings.Join(headers, "|") != want {
		t.Errorf("controller-metrics headers %q, want %q\n%s", headers, want, out)
	}
	if !strings.Contains(out, "port 9996 through the API server") || err == nil || !strings.Contains(err.Error(), "3 of 3 admin endpoints") {
		t.Errorf("controller-metrics: err = %v\n%s", err, out)
	}
	if _, _, err := run(t, "", "diagnostics", "policy", "--kubeconfig", kc, "-L", cp, "-n", ns, "deploy/web", "80"); err == nil ||
		!strings.Contains(err.Error(), "want svc/NAME or pod/NAME") {
		t.Errorf("policy of a deployment: err = %v", err)
	}
	if _, _, err := run(t, "", "diagnostics", "policy", "--kubeconfig", kc, "-n", ns, "svc/web", "http"); err == nil ||
		!strings.Contains(err.Error(), `port "http": want a number`) {
		t.Errorf("policy with a named port: err = %v", err)
	}
}
