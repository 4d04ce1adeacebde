package diagnostics

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/cli/internal/cptest"
	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

func TestEndpoints(t *testing.T) {
	c := kube.Shared(t)
	addr := cptest.Destination(t, c)
	ns := c.Namespace(t)
	k := c.Client()
	ctx := context.Background()
	if _, err := k.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-svc", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: ns, Labels: map[string]string{"app": "web"}}})
	c.SetPodStatus(t, ns, pod.Name, kube.PodStatus{Ready: true, IPs: []string{"10.244.6.7"}})
	ready := true
	if _, err := k.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-svc-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "web-svc"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.6.7"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web-0"}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	authority := "web-svc." + ns + ".svc.cluster.local:80"
	var eps []Endpoint
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		eps, err = Endpoints(ctx, addr, authority)
		cancel()
		if err == nil && len(eps) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoints of %s: %v %v", authority, eps, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval while the informers catch up
	}
	var b bytes.Buffer
	WriteEndpoints(&b, authority, eps)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAMESPACE IP PORT POD SERVICE" ||
		strings.Join(strings.Fields(lines[1]), " ") != ns+" 10.244.6.7 8080 web-0 web-svc."+ns {
		t.Errorf("table:\n%s", b.String())
	}

	for _, tc := range []struct{ authority, want string }{
		{"nope." + ns + ".svc.cluster.local:80", "not a known service"},
		{"web-svc", "want host:port"},
		{"web-svc." + ns + ".svc.cluster.local:http", "bad port"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := Endpoints(ctx, addr, tc.authority)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.authority, err, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
