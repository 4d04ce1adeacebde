package command

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/cli/internal/cptest"
	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEndpointsAndPolicyThroughTheirOwnPortForward runs `diagnostics endpoints` and
// `diagnostics policy` with only a kubeconfig: they find the running linkerd-destination
// pod, open a port-forward to its 8086/8090 through the real API server (whose kubelet
// here is a stand-in forwarding to the real destination and policy servers on loopback)
// and print the answers.
func TestEndpointsAndPolicyThroughTheirOwnPortForward(t *testing.T) {
	c := kube.Shared(t)
	kc := c.Kubeconfig()
	kubelet := cptest.StartKubelet(t, c, map[string]string{"8086": cptest.Destination(t, c), "8090": cptest.Policy(t, c)})
	cp, ns := c.Namespace(t), c.Namespace(t)
	c.CreatePod(t, testPod(cp, "linkerd-destination-0", map[string]string{"linkerd.io/control-plane-component": "destination"},
		corev1.Container{Name: "destination", Image: "destination"}))
	c.SetPodStatus(t, cp, "linkerd-destination-0", kube.PodStatus{Node: kubelet.Node.Name, IPs: []string{"10.244.0.9"}, Ready: true})
	if _, err := c.Client().CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.CreatePod(t, testPod(ns, "web-0", map[string]string{"app": "web"},
		corev1.Container{Name: "web", Image: "web", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}))

	authority := "web." + ns + ".svc.cluster.local:80"
	// Poll while the servers' informers catch up with the new Service and pod.
	eventually := func(what string, args []string, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, _, err := run(t, "", append(args, "--kubeconfig", kc, "-L", cp)...)
			if err == nil && strings.Contains(out, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v\n%s", what, err, out)
			}
			time.Sleep(200 * time.Millisecond) // poll interval
		}
	}
	eventually("endpoints", []string{"diagnostics", "endpoints", authority}, "No endpoints found for "+authority+".\n")
	eventually("outbound policy", []string{"diagnostics", "policy", "-n", ns, "svc/web", "80"}, "detect:")
	eventually("inbound policy", []string{"diagnostics", "policy", "-n", ns, "-o", "json", "web-0", "8080"}, `"name": "all-unauthenticated"`)
	if paths := kubelet.Paths(); len(paths) < 3 || paths[0] != "/portForward/"+cp+"/linkerd-destination-0" {
		t.Errorf("kubelet requests %v, want port-forwards to %s/linkerd-destination-0", paths, cp)
	}
}
