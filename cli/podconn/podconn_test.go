package podconn

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/cli/internal/cptest"
	"github.com/l5d-go/l5d/test/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// TestOpenForwardsThroughTheAPIServer opens a port-forward with client-go through the
// real API server, which finds the pod's node and calls its kubelet (a fake one on
// loopback, since test/kube has no kubelets); bytes written to the local end reach the
// pod's port and come back.
func TestOpenForwardsThroughTheAPIServer(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The "pod's port 8086": an upper-casing echo server on loopback.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				b := make([]byte, 64)
				n, _ := conn.Read(b)
				conn.Write([]byte(strings.ToUpper(string(b[:n]))))
			}()
		}
	}()
	kubelet := cptest.StartKubelet(t, c, map[string]string{"8086": l.Addr().String()})
	c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dst-0", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "destination", Image: "destination"}}}})
	c.SetPodStatus(t, ns, "dst-0", kube.PodStatus{Node: kubelet.Node.Name, IPs: []string{"10.244.0.9"}, Ready: true})

	f, err := Open(ctx, c.RESTConfig(), ns, "dst-0", 8086)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	conn, err := net.Dial("tcp", f.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "HELLO" {
		t.Fatalf("through the port-forward: %q %v", got, err)
	}
	paths := kubelet.Paths()
	if len(paths) == 0 || paths[0] != "/portForward/"+ns+"/dst-0" {
		t.Errorf("kubelet requests %v, want /portForward/%s/dst-0", paths, ns)
	}
	f.Close()
	if _, err := net.Dial("tcp", f.Addr); err == nil {
		t.Error("the local port still listens after Close")
	}

	if _, err := Open(ctx, c.RESTConfig(), ns, "nope", 8086); err == nil || !strings.Contains(err.Error(), "port-forward to pod "+ns+"/nope port 8086") {
		t.Errorf("missing pod: err = %v", err)
	}
}
