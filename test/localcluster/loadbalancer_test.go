package localcluster

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// TestLoadBalancersNeverShareAnAddressWithALaggingCache runs the controller against the
// real API server with a cache the test holds back: a pass that lists a Service without
// the address an earlier write gave it (the informer has not caught up) must not hand
// that address to another Service. The Services carry a class of their own so that the
// cluster's controller leaves them alone.
func TestLoadBalancersNeverShareAnAddressWithALaggingCache(t *testing.T) {
	c := cluster(t)
	ns := c.Kube().Namespace(t)
	svcs := c.Client().CoreV1().Services(ns)
	const class = "l5d.test/lagging-cache"
	create := func(name string) *corev1.Service {
		t.Helper()
		s, err := svcs.Create(context.Background(), &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr(class),
				Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Gone at the end, not with the namespace later: the pool is small and the
		// controller reads the API server's Services, so a repeated run (-count) would
		// find the addresses still held.
		t.Cleanup(func() { _ = svcs.Delete(context.Background(), name, metav1.DeleteOptions{}) })
		return s
	}
	addressOf := func(name string) string {
		t.Helper()
		s, err := svcs.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Status.LoadBalancer.Ingress) != 1 {
			t.Fatalf("%s: status.loadBalancer %+v", name, s.Status.LoadBalancer)
		}
		return s.Status.LoadBalancer.Ingress[0].IP
	}
	pool := netip.MustParsePrefix("10.251.7.0/29")
	// lagging is a cache holding exactly these versions of the Services.
	lagging := func(versions ...*corev1.Service) corelisters.ServiceLister {
		idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
		for _, s := range versions {
			if err := idx.Add(s); err != nil {
				t.Fatal(err)
			}
		}
		return corelisters.NewServiceLister(idx)
	}
	newController := func(versions ...*corev1.Service) *loadBalancers {
		l := newLoadBalancers(c.Client(), lagging(versions...), pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
		l.class = class
		return l
	}

	// One controller: its first write is not in the cache when the second Service comes.
	first := create("first")
	l := newController(first)
	l.pass(context.Background())
	if got := addressOf("first"); got != "10.251.7.1" {
		t.Fatalf("first got %s, want the pool's lowest address 10.251.7.1", got)
	}
	second := create("second")
	l.lister = lagging(first, second) // first as it was before the write
	l.pass(context.Background())
	if a, b := addressOf("first"), addressOf("second"); a == b {
		t.Fatalf("first and second share %s", a)
	}

	// A fresh controller (a restart) with the same lagging cache: it knows nothing of the
	// earlier writes, its write for first conflicts, and third must still get an address
	// of its own.
	third := create("third")
	l = newController(first, second, third)
	l.pass(context.Background())
	seen := map[string]string{}
	for _, name := range []string{"first", "second", "third"} {
		ip := addressOf(name)
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s share %s", name, other, ip)
		}
		seen[ip] = name
	}
}
