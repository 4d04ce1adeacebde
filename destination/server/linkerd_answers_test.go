package server_test

import (
	"net/netip"
	"testing"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	pb "github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/meta"
	"github.com/l5d-go/l5d/test/kube"
)

// zonedPod creates a ready pod of app=web on node with the ReplicaSet's pod-template-hash
// label, as a Deployment's pods have.
func (e *env) zonedPod(t *testing.T, ns, name, node, ip string, meshed bool) {
	t.Helper()
	containers := []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}
	if meshed {
		containers = append(containers, corev1.Container{Name: "linkerd-proxy", Image: "proxy"})
	}
	e.c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
		Labels: map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6"}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: containers}})
	e.c.SetPodStatus(t, ns, name, kube.PodStatus{Node: node, IPs: []string{ip}, Ready: true})
}

// TestGetEndpointLabelsAsLinkerd: Get's endpoints carry the metric labels Linkerd's
// destination gives them: pod_template_hash, the endpoint's zone, and zone_locality
// (local or remote to the client's node named in the context token, unknown without one),
// for meshed and unmeshed endpoints alike.
func TestGetEndpointLabelsAsLinkerd(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	n1 := e.c.CreateNode(t, kube.Node{Labels: map[string]string{corev1.LabelTopologyZone: "zone-1"}})
	n2 := e.c.CreateNode(t, kube.Node{Labels: map[string]string{corev1.LabelTopologyZone: "zone-2"}})
	e.service(t, ns, nil)
	e.zonedPod(t, ns, "web-a", n1.Name, "10.5.0.1", true)
	e.zonedPod(t, ns, "web-b", n2.Name, "10.5.0.2", false)
	a, b := netip.MustParseAddrPort("10.5.0.1:8080"), netip.MustParseAddrPort("10.5.0.2:8080")

	path := "web." + ns + ".svc.cluster.local:80"
	fromZone1 := e.getWith(t, &pb.GetDestination{Scheme: "k8s", Path: path, ContextToken: `{"ns":"` + ns + `","nodeName":"` + n1.Name + `","pod":"client"}`})
	fromZone1.until(t, "both endpoints with their zones", func(w *watcher) bool {
		return w.set[a].GetMetricLabels()["zone"] == "zone-1" && w.set[b].GetMetricLabels()["zone"] == "zone-2"
	})
	for ap, want := range map[string]map[string]string{
		"10.5.0.1:8080": {"pod": "web-a", "pod_template_hash": "5d8f7c9b6", "zone": "zone-1", "zone_locality": "local", "serviceaccount": "web"},
		"10.5.0.2:8080": {"pod": "web-b", "pod_template_hash": "5d8f7c9b6", "zone": "zone-2", "zone_locality": "remote", "serviceaccount": "web"},
	} {
		got := fromZone1.set[netip.MustParseAddrPort(ap)].GetMetricLabels()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: label %s=%q, want %q (labels %v)", ap, k, got[k], v, got)
			}
		}
	}

	anonymous := e.get(t, path)
	anonymous.until(t, "both endpoints", func(w *watcher) bool { return len(w.set) == 2 })
	for _, ap := range []string{"10.5.0.1:8080", "10.5.0.2:8080"} {
		if l := anonymous.set[netip.MustParseAddrPort(ap)].GetMetricLabels()["zone_locality"]; l != "unknown" {
			t.Errorf("%s for a client of unknown node: zone_locality=%q, want unknown", ap, l)
		}
	}
}

// TestGetProfileAsLinkerd: GetProfile answers carry what Linkerd's do: parent_ref (the
// Service and port) and profile_ref (the ServiceProfile applied), dstOverrides weights on
// the 10,000 scale (900m is 9000), a pod endpoint's namespace label, and for a Service
// that does not exist the default profile, named.
func TestGetProfileAsLinkerd(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	node := e.c.CreateNode(t, kube.Node{Labels: map[string]string{corev1.LabelTopologyZone: "zone-1"}})
	e.service(t, ns, nil)
	e.zonedPod(t, ns, "web-a", node.Name, "10.6.0.1", true)
	fqdn := "web." + ns + ".svc.cluster.local"
	e.c.Apply(t, ns, `apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: `+fqdn+`, namespace: `+ns+`}
spec:
  dstOverrides:
  - {authority: web-v1.`+ns+`.svc.cluster.local:80, weight: 900m}
  - {authority: web-v2.`+ns+`.svc.cluster.local:80, weight: 100m}
  - {authority: web-v3.`+ns+`.svc.cluster.local:80, weight: 1}
`)
	byName := e.getProfile(t, fqdn+":80")
	var got *pb.DestinationProfile
	byName.until("the ServiceProfile's overrides", func(p *pb.DestinationProfile) bool { got = p; return len(p.DstOverrides) == 3 })
	for i, want := range []uint32{9000, 1000, 10000} {
		if w := got.DstOverrides[i].Weight; w != want {
			t.Errorf("dstOverrides[%d] (%s) weight %d, want %d", i, got.DstOverrides[i].Authority, w, want)
		}
	}
	wantParent := &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{Group: "core", Kind: "Service", Name: "web", Namespace: ns, Port: 80}}}
	wantProfile := &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{Group: "linkerd.io", Kind: "ServiceProfile", Name: fqdn, Namespace: ns}}}
	if !proto.Equal(got.ParentRef, wantParent) || !proto.Equal(got.ProfileRef, wantProfile) {
		t.Errorf("parent_ref %v, profile_ref %v; want %v and %v", got.ParentRef, got.ProfileRef, wantParent, wantProfile)
	}

	missing := e.getProfile(t, "missing."+ns+".svc.cluster.local:8080")
	missing.until("the default profile of a missing Service", func(p *pb.DestinationProfile) bool {
		wantParent := &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{Group: "core", Kind: "Service", Name: "missing", Namespace: ns, Port: 8080}}}
		if p.FullyQualifiedName != "missing."+ns+".svc.cluster.local" || !proto.Equal(p.ParentRef, wantParent) || p.ProfileRef != nil || p.RetryBudget.GetRetryRatio() != 0.2 {
			t.Fatalf("profile of a missing Service: %v", p)
		}
		return true
	})

	byIP := e.getProfile(t, "10.6.0.1:8080")
	byIP.until("the pod's endpoint with its namespace", func(p *pb.DestinationProfile) bool {
		l := p.GetEndpoint().GetMetricLabels()
		return l["namespace"] == ns && l["pod"] == "web-a" && l["pod_template_hash"] == "5d8f7c9b6"
	})
}

// TestGetProfileOfAPodNameAsLinkerd: GetProfile of a pod's name under a headless Service
// (<pod>.<svc>.<ns>.svc.cluster.local) answers that pod as a lone endpoint, with its
// identity and namespace label, as Linkerd's destination does, not the Service's profile.
func TestGetProfileOfAPodNameAsLinkerd(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	node := e.c.CreateNode(t, kube.Node{})
	e.c.CreateServiceAccount(t, ns, "db")
	if _, err := e.c.Client().CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"},
			Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: ns, Labels: map[string]string{"app": "db"}},
		Spec: corev1.PodSpec{Hostname: "db-0", Subdomain: "db", ServiceAccountName: "db", Containers: []corev1.Container{
			{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{Name: "pg", ContainerPort: 5432}}},
			{Name: "linkerd-proxy", Image: "proxy"}}}})
	e.c.SetPodStatus(t, ns, "db-0", kube.PodStatus{Node: node.Name, IPs: []string{"10.7.0.1"}, Ready: true})

	p := e.getProfile(t, "db-0.db."+ns+".svc.cluster.local:5432")
	p.until("the pod as the endpoint", func(p *pb.DestinationProfile) bool {
		ep := p.GetEndpoint()
		return ep.GetTlsIdentity().GetDnsLikeIdentity().GetName() == "db."+ns+".serviceaccount.identity.linkerd.cluster.local" &&
			ep.GetMetricLabels()["namespace"] == ns && ep.GetMetricLabels()["pod"] == "db-0" &&
			p.OpaqueProtocol && p.FullyQualifiedName == ""
	})
}
