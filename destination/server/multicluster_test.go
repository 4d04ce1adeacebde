package server_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/destination/remote"
	"github.com/l5d-go/l5d/destination/server"
	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"github.com/l5d-go/l5d/test/kube"
)

func ptr[T any](v T) *T { return &v }

// epSlice is an EndpointSlice of Service svc with one endpoint per IP (targetRef pod when
// pod is set) on port name/number.
func epSlice(ns, svc, name string, port int32, pod string, ips ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc + "-test", Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: "l5d-test"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr(name), Port: ptr(port), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	for _, ip := range ips {
		ep := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}
		if pod != "" {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod}
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	return s
}

// TestGetPodToPodMirror: a Service mirrored pod to pod (mirror.linkerd.io/remote-discovery)
// resolves, through the linked cluster's credentials Secret, to the remote pods with
// their identities in the remote trust domain; it follows the remote endpoints, and has
// none once the Secret is gone.
func TestGetPodToPodMirror(t *testing.T) {
	linkerdNS := kube.Shared(t).Namespace(t)
	store := remote.New(kube.Shared(t).Client(), linkerdNS, slog.Default(), prometheus.NewRegistry())
	e := startB(t, func(s *server.Server) { s.SetRemoteClusters(store) })
	east, err := kube.Start(kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(east.Stop)
	ctx := t.Context()
	ns := e.c.Namespace(t)

	// East: a meshed pod behind Service catalog.
	if _, err := east.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	east.CreateServiceAccount(t, ns, "default")
	east.CreateServiceAccount(t, ns, "catalog")
	east.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "catalog-0", Namespace: ns, Labels: map[string]string{"linkerd.io/control-plane-ns": "linkerd"}},
		Spec: corev1.PodSpec{ServiceAccountName: "catalog", Containers: []corev1.Container{{Name: "app", Image: "app"}, {Name: "linkerd-proxy", Image: "proxy"}}}})
	east.SetPodStatus(t, ns, "catalog-0", kube.PodStatus{IPs: []string{"10.2.0.5"}, Ready: true})
	if _, err := east.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "catalog", Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := east.Client().DiscoveryV1().EndpointSlices(ns).Create(ctx, epSlice(ns, "catalog", "http", 8080, "catalog-0", "10.2.0.5"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// West: the mirror, and the link's Secret for the destination controller.
	if _, err := e.c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "catalog-east", Namespace: ns,
		Labels: map[string]string{mc.LabelMirroredService: "true", mc.LabelClusterName: "east", mc.LabelRemoteDiscovery: "east", mc.LabelRemoteService: "catalog"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := e.get(t, "catalog-east."+ns+".svc.cluster.local:8080")
	w.until(t, "no endpoints before the link", func(w *watcher) bool { return w.last.GetNoEndpoints() != nil && w.last.GetNoEndpoints().Exists })

	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := east.WriteKubeconfig(kc, east.Host()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	storeCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = store.Run(storeCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	if _, err := e.c.Client().CoreV1().Secrets(linkerdNS).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-credentials-east", Labels: map[string]string{mc.LabelDestinationCluster: "east"},
			Annotations: map[string]string{mc.AnnTrustDomain: "east.example"}},
		Type: mc.CredentialsSecretType, Data: map[string][]byte{mc.CredentialsKey: data},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	w.until(t, "the remote pod", func(w *watcher) bool { return len(w.set) == 1 })
	ep := w.set[netip.MustParseAddrPort("10.2.0.5:8080")]
	if ep == nil {
		t.Fatalf("endpoints %v, want 10.2.0.5:8080", w.addrs())
	}
	if id := ep.GetTlsIdentity().GetDnsLikeIdentity().GetName(); id != "catalog."+ns+".serviceaccount.identity.linkerd.east.example" {
		t.Errorf("identity %q, want the remote pod's in the remote trust domain", id)
	}
	if ep.GetProtocolHint().GetH2() == nil || ep.MetricLabels["pod"] != "catalog-0" {
		t.Errorf("endpoint %v", ep)
	}

	// The remote endpoints change: a second pod (unmeshed).
	east.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "catalog-1", Namespace: ns}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}})
	sl, err := east.Client().DiscoveryV1().EndpointSlices(ns).Get(ctx, "catalog-test", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sl.Endpoints = append(sl.Endpoints, epSlice(ns, "catalog", "http", 8080, "catalog-1", "10.2.0.6").Endpoints...)
	if _, err := east.Client().DiscoveryV1().EndpointSlices(ns).Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.until(t, "two remote endpoints", func(w *watcher) bool { return len(w.set) == 2 })

	// Unlinked: the Secret goes, and so do the endpoints.
	if err := e.c.Client().CoreV1().Secrets(linkerdNS).Delete(ctx, "cluster-credentials-east", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.until(t, "no endpoints after unlink", func(w *watcher) bool { return len(w.set) == 0 })
}

// TestGetGatewayMirror: the endpoints of a gateway mirror (no pod) get the remote
// gateway's identity and the remote Service's name as authority override.
func TestGetGatewayMirror(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	ns := e.c.Namespace(t)
	gwID := "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
	if _, err := e.c.Client().CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "catalog-east", Namespace: ns,
		Labels:      map[string]string{mc.LabelMirroredService: "true", mc.LabelClusterName: "east"},
		Annotations: map[string]string{mc.AnnRemoteGatewayIdentity: gwID, mc.AnnRemoteSvcFQName: "catalog." + ns + ".svc.cluster.local"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Client().DiscoveryV1().EndpointSlices(ns).Create(ctx, epSlice(ns, "catalog-east", "http", 4143, "", "192.0.2.10"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := e.get(t, "catalog-east."+ns+".svc.cluster.local:8080")
	w.until(t, "the gateway", func(w *watcher) bool { return len(w.set) == 1 })
	ep := w.set[netip.MustParseAddrPort("192.0.2.10:4143")]
	if ep == nil {
		t.Fatalf("endpoints %v", w.addrs())
	}
	if id := ep.GetTlsIdentity().GetDnsLikeIdentity().GetName(); id != gwID {
		t.Errorf("identity %q, want the gateway's", id)
	}
	if got := ep.GetAuthorityOverride().GetAuthorityOverride(); got != "catalog."+ns+".svc.cluster.local:8080" {
		t.Errorf("authority override %q", got)
	}
	if ep.GetProtocolHint().GetH2() == nil {
		t.Errorf("hint %v", ep.GetProtocolHint())
	}
}
