package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/test/node"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// resolverVia is a Go DNS client whose every query goes to server over network, dialled
// by dial (from inside a namespace).
func resolverVia(dial func(ctx context.Context, network, addr string) (net.Conn, error), network, server string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return dial(ctx, network, server)
	}}
}

// lookupEquals looks name up with r and fails unless it has exactly want.
func lookupEquals(r *net.Resolver, name string, want ...string) error {
	got, err := r.LookupHost(context.Background(), name)
	if err != nil {
		return err
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s: got %v, want %v", name, got, want)
	}
	return nil
}

func TestPodsResolveServiceNamesThroughClusterDNS(t *testing.T) {
	c := cluster(t)
	imageDir(t)
	ns := c.Kube().Namespace(t)
	ctx := context.Background()
	svcs := c.Client().CoreV1().Services(ns)
	catalog, err := svcs.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "catalog"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip := catalog.Spec.ClusterIP
	// Two headless Services: db with two ready endpoints (one named db-0, as a StatefulSet
	// pod is) and one that is not ready, and pending with no endpoints yet.
	for _, name := range []string{"db", "pending"} {
		if _, err := svcs.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	yes, no := true, false
	if _, err := c.Client().DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-1", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.250.1"}, Hostname: ptr("db-0"), Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{Addresses: []string{"10.244.250.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{Addresses: []string{"10.244.250.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &no}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The server in the node namespace answers from the informer caches once they have
	// the objects, over UDP and TCP.
	for _, network := range []string{"udp", "tcp"} {
		r := resolverVia(c.Network().Node.Dial, network, DNSAddr.String())
		eventually.NoError(t, "the cluster DNS server to know the Services over "+network, func() error {
			return errors.Join(
				lookupEquals(r, "catalog."+ns+".svc.cluster.local.", ip),
				lookupEquals(r, "db."+ns+".svc.cluster.local.", "10.244.250.1", "10.244.250.2"),
			)
		})
	}

	// A pod run by the node agent resolves through the resolv.conf it was given: short
	// names through the search path, a headless name to its ready pods, and names that do
	// not exist fail with "not found" (NXDOMAIN), not a timeout.
	names := []string{
		"catalog", "catalog." + ns, "catalog." + ns + ".svc.cluster.local",
		"db", "db-0.db", "kubernetes.default", "kube-dns.kube-system",
		"pending", "no-such-service", "no-such-service." + ns + ".svc.cluster.local", "example.com",
	}
	if _, err := c.Client().CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "resolver"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "app", Image: "ghcr.io/l5d-go/hello:test", Args: append([]string{"resolve"}, names...),
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	eventually.NoError(t, "the resolver pod to finish", func() error {
		p, err := c.Client().CoreV1().Pods(ns).Get(ctx, "resolver", metav1.GetOptions{})
		if err != nil {
			return err
		}
		phase = p.Status.Phase
		if phase != corev1.PodSucceeded && phase != corev1.PodFailed {
			return fmt.Errorf("phase %s", phase)
		}
		return nil
	})
	out, err := os.ReadFile(node.LogPath(c.RunDir(), ns, "resolver", "app"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"catalog ok " + ip,
		"catalog." + ns + " ok " + ip,
		"catalog." + ns + ".svc.cluster.local ok " + ip,
		"db ok 10.244.250.1,10.244.250.2",
		"db-0.db ok 10.244.250.1",
		"kubernetes.default ok " + APIServiceIP.String(),
		"kube-dns.kube-system ok " + DNSServiceIP.String(),
		"pending notfound",
		"no-such-service notfound",
		"no-such-service." + ns + ".svc.cluster.local notfound",
		"example.com notfound",
	}, "\n") + "\n"
	if phase != corev1.PodSucceeded || string(out) != want {
		t.Errorf("resolver pod %s, output:\n%s\nwant:\n%s", phase, out, want)
	}
	resolv, err := os.ReadFile(c.RunDir() + "/pods/" + ns + "_resolver/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if want := "nameserver " + DNSAddr.Addr().String() + "\n"; !strings.HasPrefix(string(resolv), want) {
		t.Errorf("the pod's resolv.conf %q does not start with %q", resolv, want)
	}
}

func TestKubeDNSServiceAnswersOnItsClusterIP(t *testing.T) {
	c := cluster(t)
	svc, err := c.Client().CoreV1().Services("kube-system").Get(context.Background(), "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != DNSServiceIP.String() {
		t.Errorf("kube-dns cluster IP %s, want %s", svc.Spec.ClusterIP, DNSServiceIP)
	}
	// From a pod, through kube-proxy's rules for the Service, over UDP and TCP.
	pod := addPod(t, c, "dnsclient")
	for _, network := range []string{"udp", "tcp"} {
		r := resolverVia(pod.Dial, network, net.JoinHostPort(DNSServiceIP.String(), "53"))
		eventually.NoError(t, "kubernetes.default through the kube-dns Service over "+network, func() error {
			return lookupEquals(r, "kubernetes.default.svc.cluster.local.", APIServiceIP.String())
		})
		_, err := r.LookupHost(context.Background(), "no-such-service.default.svc.cluster.local.")
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("%s: a name that does not exist: %v; want not found", network, err)
		}
	}
}
