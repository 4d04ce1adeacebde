package diagnostics

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/cli/internal/cptest"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	pbout "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPolicy: the command reports the policy the controller derives from the pod's
// default-inbound-policy annotation, in JSON and YAML, and names bad input.
func TestPolicy(t *testing.T) {
	c := kube.Shared(t)
	addr := cptest.Policy(t, c)
	ns := c.Namespace(t)
	c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: ns,
		Annotations: map[string]string{"config.linkerd.io/default-inbound-policy": "cluster-authenticated"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}})

	var srv *pb.Server
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		srv, err = Policy(ctx, addr, ns+":web-0", 8080)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy of %s:web-0: %v", ns, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval while the informers catch up
	}
	var js, ya bytes.Buffer
	if err := WritePolicy(&js, srv, "json"); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatalf("json output %q: %v", js.String(), err)
	}
	if doc.Labels["kind"] != "default" || doc.Labels["name"] != "cluster-authenticated" {
		t.Errorf("policy labels %v, want the pod's cluster-authenticated default\n%s", doc.Labels, js.String())
	}
	if err := WritePolicy(&ya, srv, "yaml"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ya.String(), "name: cluster-authenticated") {
		t.Errorf("yaml output:\n%s", ya.String())
	}
	if err := WritePolicy(&ya, srv, "table"); err == nil {
		t.Error("unknown output format accepted")
	}

	for _, tc := range []struct {
		workload string
		port     uint32
		want     string
	}{
		{"web-0", 8080, "want namespace:pod"},
		{ns + ":web-0", 0, "must be 1-65535"},
		{ns + ":nope", 8080, "policy API at"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := Policy(ctx, addr, tc.workload, tc.port)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s port %d: err = %v, want %q", tc.workload, tc.port, err, tc.want)
		}
	}
}

// TestOutboundPolicy: for a Service port the command reports the outbound policy the
// controller serves client proxies (protocol detection with the default HTTP route to
// the Service), and an unknown Service is an error naming the policy API.
func TestOutboundPolicy(t *testing.T) {
	c := kube.Shared(t)
	addr := cptest.Policy(t, c)
	ns := c.Namespace(t)
	if _, err := c.Client().CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	authority := "web." + ns + ".svc.cluster.local:80"
	var p *pbout.OutboundPolicy
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		p, err = OutboundPolicy(ctx, addr, authority, ns)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbound policy of %s: %v", authority, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval while the informers catch up
	}
	var ya bytes.Buffer
	if err := WritePolicy(&ya, p, "yaml"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"detect:", "http1:", "routes:", "name: web"} {
		if !strings.Contains(ya.String(), want) {
			t.Errorf("outbound policy lacks %q:\n%s", want, ya.String())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := OutboundPolicy(ctx, addr, "nope."+ns+".svc.cluster.local:80", ns); err == nil || !strings.Contains(err.Error(), "policy API at") {
		t.Errorf("unknown Service: err = %v", err)
	}
	if _, err := OutboundPolicy(ctx, addr, "web", ns); err == nil || !strings.Contains(err.Error(), "want host:port") {
		t.Errorf("authority without port: err = %v", err)
	}
}
