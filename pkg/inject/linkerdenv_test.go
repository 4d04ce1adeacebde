package inject

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEnvAsLinkerdsInjector: a pod injected with the defaults gets the proxy environment
// Linkerd's injector writes, name for name (proxy/config/testdata/linkerd-injected-env.json,
// transcribed from Linkerd's chart template), with the same values where they do not
// depend on the pod or the cluster, so a pod injected by l5d runs Linkerd's proxy too.
func TestEnvAsLinkerdsInjector(t *testing.T) {
	b, err := os.ReadFile("../../proxy/config/testdata/linkerd-injected-env.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Default []struct{ Name, Value string } `json:"default"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	linkerd := map[string]string{}
	for _, e := range doc.Default {
		linkerd[e.Name] = e.Value
	}

	v := testValues(t)
	v.NativeSidecar = false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "emojivoto", Annotations: map[string]string{AnnotationInject: "enabled"}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}, {ContainerPort: 8801}}}}},
	}
	out, _, err := v.InjectPod(Namespace{Name: "emojivoto"}, Owner{Kind: "Deployment", Name: "web"}, pod)
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]corev1.EnvVar{}
	for _, c := range out.Spec.Containers {
		if c.Name == ProxyContainerName {
			for _, e := range c.Env {
				ours[e.Name] = e
			}
		}
	}
	var missing, extra []string
	for name := range linkerd {
		if _, ok := ours[name]; !ok {
			missing = append(missing, name)
		}
	}
	for name := range ours {
		if _, ok := linkerd[name]; !ok {
			extra = append(extra, name)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("proxy environment differs from Linkerd's injector: missing %v, not written by Linkerd %v", missing, extra)
	}
	// Values that depend neither on the pod (Kubernetes fills those in) nor on the
	// cluster's configuration are Linkerd's.
	podOrCluster := []string{"TRUST_ANCHORS", "NETWORKS", "INBOUND_IPS", "INBOUND_PORTS", "_SVC_", "LOCAL_NAME", "_pod_", "_l5d_", "WORKLOAD", "CONTEXT", "LOG"}
	for name, want := range linkerd {
		e, ok := ours[name]
		if !ok || e.ValueFrom != nil || slices.ContainsFunc(podOrCluster, func(s string) bool { return strings.Contains(name, s) }) {
			continue
		}
		if e.Value != want {
			t.Errorf("%s=%q, Linkerd's injector writes %q", name, e.Value, want)
		}
	}
}
