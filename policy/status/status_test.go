package status_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/policy/outbound"
	"github.com/l5d-go/l5d/policy/status"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

func installCRDs(t *testing.T, c *kube.Cluster) {
	t.Helper()
	policy, err := os.ReadFile("../../deploy/crds/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "", string(policy))
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("locating sigs.k8s.io/gateway-api: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "", string(data))
	c.WaitCRD(t, "httproutes.policy.linkerd.io")
	c.WaitCRD(t, "egressnetworks.policy.linkerd.io")
	c.WaitCRD(t, "httproutes.gateway.networking.k8s.io")
}

// replica is one policy controller's status writer with its own informers.
type replica struct {
	w      *status.Writer
	cancel context.CancelFunc
	done   chan struct{}
}

func startReplica(t *testing.T, c *kube.Cluster, leaseNS, name string) *replica {
	t.Helper()
	idx, err := outbound.NewIndex(k8s.NewInformers(c.Client(), c.Dynamic()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := idx.Start(ctx, 30*time.Second); err != nil {
		cancel()
		t.Fatal(err)
	}
	w := status.New(idx, c.Client(), c.Dynamic(), status.Config{Namespace: leaseNS, Identity: name,
		ClusterNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		LeaseDuration:   4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}, slog.New(slog.DiscardHandler))
	r := &replica{w: w, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

type cond struct{ status, reason string }

// conditions returns our status entry's conditions by type, or nil.
func conditions(t *testing.T, c *kube.Cluster, ns, name string) map[string]cond {
	t.Helper()
	u, err := c.Dynamic().Resource(outbound.RouteResources[0]).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parents, _, _ := unstructured.NestedSlice(u.Object, "status", "parents")
	for _, p := range parents {
		pm := p.(map[string]any)
		if pm["controllerName"] != status.ControllerName {
			continue
		}
		out := map[string]cond{}
		cs, _ := pm["conditions"].([]any)
		for _, c := range cs {
			cm := c.(map[string]any)
			out[cm["type"].(string)] = cond{cm["status"].(string), cm["reason"].(string)}
		}
		return out
	}
	return nil
}

func TestOneLeaderWritesStatusOnce(t *testing.T) {
	c := kube.Shared(t)
	installCRDs(t, c)
	leaseNS, ns := c.Namespace(t), c.Namespace(t)
	a := startReplica(t, c, leaseNS, "policy-a")
	b := startReplica(t, c, leaseNS, "policy-b")
	eventually.True(t, "a leader", func() bool { return a.w.IsLeader() || b.w.IsLeader() })
	leader, follower := a, b
	if b.w.IsLeader() {
		leader, follower = b, a
	}
	if follower.w.IsLeader() {
		t.Fatal("both replicas lead")
	}
	ctx := context.Background()
	if _, err := c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Apply(t, ns, `
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: split}
spec:
  parentRefs: [{group: core, kind: Service, name: web, port: 80}]
  rules: [{backendRefs: [{name: web, port: 80, weight: 9}, {name: web-v2, port: 80, weight: 1}]}]
`)
	eventually.True(t, "status naming the missing backend", func() bool {
		cs := conditions(t, c, ns, "split")
		return cs["Accepted"] == cond{"True", "Accepted"} && cs["ResolvedRefs"] == cond{"False", "BackendNotFound"}
	})
	// An unrelated change makes the leader reconcile again: the unchanged status is not rewritten.
	passes := leader.w.Passes()
	if _, err := c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "another reconcile pass", func() bool { return leader.w.Passes() > passes })
	if leader.w.Writes() != 1 || follower.w.Writes() != 0 {
		t.Fatalf("writes: leader %d, follower %d; want 1 and 0", leader.w.Writes(), follower.w.Writes())
	}

	// The leader goes away: the other replica takes over and resolves the backend once it exists.
	leader.cancel()
	<-leader.done
	eventually.True(t, "the follower to lead", follower.w.IsLeader)
	if _, err := c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web-v2"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The write is counted once UpdateStatus has returned, which can be after a reader
	// already sees the new status: wait for both.
	eventually.True(t, "ResolvedRefs to turn true, written by the new leader", func() bool {
		return conditions(t, c, ns, "split")["ResolvedRefs"] == cond{"True", "ResolvedRefs"} && follower.w.Writes() > 0
	})
	if follower.w.Writes() != 1 {
		t.Errorf("new leader writes = %d, want 1", follower.w.Writes())
	}
}
