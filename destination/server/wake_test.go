package server_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	pb "github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/test/kube"
)

// counterValue returns the value of counter name{label=value} in reg (0 when absent).
func counterValue(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// profiles follows a GetProfile stream.
type profiles struct {
	t  *testing.T
	ch chan *pb.DestinationProfile
}

func (e *env) getProfile(t *testing.T, path string) *profiles {
	t.Helper()
	s, err := e.pb.GetProfile(t.Context(), &pb.GetDestination{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	p := &profiles{t: t, ch: make(chan *pb.DestinationProfile, 16)}
	go func() {
		defer close(p.ch)
		for {
			u, err := s.Recv()
			if err != nil {
				return
			}
			p.ch <- u
		}
	}()
	return p
}

// until reads updates until ok holds for one, or fails after 30s.
func (p *profiles) until(what string, ok func(*pb.DestinationProfile) bool) {
	p.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case u, open := <-p.ch:
			if !open {
				p.t.Fatalf("%s: stream ended", what)
			}
			if ok(u) {
				return
			}
		case <-deadline:
			p.t.Fatalf("%s: not reached", what)
		}
	}
}

// TestProfileStreamsWakeOnlyForTheirTarget: GetProfile streams recompute their answer only
// when something they answer from changes (their Service, its ServiceProfile, the pod or
// Service with their IP), not on every change in the cluster. Unrelated Service updates,
// ServiceProfiles and pods cause no recompute; each relevant change causes exactly one.
// A Get stream on a Service nothing changes is never woken either.
func TestProfileStreamsWakeOnlyForTheirTarget(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.c.CreateNode(t, kube.Node{Name: "node-1"})
	e.service(t, ns, nil)
	e.pod(t, ns, "web-a", "10.3.0.1", true, true)
	svcs := e.c.Client().CoreV1().Services(ns)
	if _, err := svcs.Create(t.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "other"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A Service without a selector, which nothing in this test changes: a Get stream on it
	// must not wake for any of the changes below.
	if _, err := svcs.Create(t.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "idle"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	byName := e.getProfile(t, "web."+ns+".svc.cluster.local:80")
	byName.until("the Service's profile", func(p *pb.DestinationProfile) bool { return p.FullyQualifiedName != "" })
	byIP := e.getProfile(t, "10.3.0.1:8080")
	byIP.until("the pod's endpoint", func(p *pb.DestinationProfile) bool { return p.GetEndpoint().GetTlsIdentity() != nil })
	// A stream's first answer reads the informer caches, which hold an object before its
	// event handler has run; a handler that runs after the stream subscribed wakes it once
	// more. The barriers make every handler for the objects above run before counting.
	e.serviceBarrier(t, ns, "barrier")
	e.podBarrier(t, ns, "barrier-0", "10.3.0.9")
	idle := e.get(t, "idle."+ns+".svc.cluster.local:80")
	idle.until(t, "no endpoints for the idle Service", func(w *watcher) bool {
		return w.last.GetNoEndpoints() != nil && w.last.GetNoEndpoints().Exists
	})
	recomputes := func() float64 {
		return counterValue(t, e.reg, "destination_stream_recomputes_total", "method", "GetProfile")
	}
	base := recomputes()
	idleBase := counterValue(t, e.reg, "destination_stream_recomputes_total", "method", "Get")

	// Unrelated changes: another Service (updated several times), its ServiceProfile, and
	// another pod.
	for i := range 5 {
		svc, err := svcs.Get(t.Context(), "other", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc.Annotations = map[string]string{"example.com/revision": string(rune('a' + i))}
		if _, err := svcs.Update(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.c.Apply(t, ns, `apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: other.`+ns+`.svc.cluster.local, namespace: `+ns+`}
spec:
  routes:
  - name: other-route
    condition: {method: GET}
`)
	e.pod(t, ns, "other-0", "10.3.0.2", true, true)

	// Then one change of each kind the streams do answer from, one at a time. The
	// informers deliver each kind in order, so once a stream has seen the change it is
	// waiting for, every earlier unrelated change of that kind has been delivered too.
	svc, err := svcs.Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Annotations = map[string]string{"config.linkerd.io/opaque-ports": "80"}
	if _, err := svcs.Update(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	byName.until("opaque after the Service annotation", func(p *pb.DestinationProfile) bool { return p.OpaqueProtocol })
	e.c.Apply(t, ns, `apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: web.`+ns+`.svc.cluster.local, namespace: `+ns+`}
spec:
  routes:
  - name: web-route
    condition: {method: GET}
`)
	byName.until("the ServiceProfile's route", func(p *pb.DestinationProfile) bool { return len(p.Routes) == 1 })
	pods := e.c.Client().CoreV1().Pods(ns)
	pod, err := pods.Get(t.Context(), "web-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Annotations = map[string]string{"config.linkerd.io/opaque-ports": "8080"}
	if _, err := pods.Update(t.Context(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	byIP.until("opaque after the pod annotation", func(p *pb.DestinationProfile) bool { return p.OpaqueProtocol })

	if got := recomputes() - base; got != 3 {
		t.Fatalf("GetProfile streams recomputed %v times for 3 relevant changes (and 7 unrelated ones), want 3", got)
	}
	if got := counterValue(t, e.reg, "destination_stream_recomputes_total", "method", "Get") - idleBase; got != 0 {
		t.Fatalf("the Get stream of the idle Service recomputed its answer %v times after it settled, want never", got)
	}
}

// serviceBarrier returns once the destination server has handled the creation of Service
// name: a GetProfile stream opened before the Service exists sees its opaque-ports
// annotation (port 80 opaque) appear. The informer runs handlers in order, so every
// earlier Service event has been handled too.
func (e *env) serviceBarrier(t *testing.T, ns, name string) {
	t.Helper()
	p := e.getProfile(t, name+"."+ns+".svc.cluster.local:80")
	p.until("the barrier Service's default profile", func(p *pb.DestinationProfile) bool { return !p.OpaqueProtocol })
	if _, err := e.c.Client().CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"config.linkerd.io/opaque-ports": "80"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.until("the barrier Service present", func(p *pb.DestinationProfile) bool { return p.OpaqueProtocol })
}

// podBarrier returns once the destination server has handled a new pod with ip (and a
// label no Service selects): a GetProfile stream on the IP, opened before, sees the pod.
// Every earlier pod event has been handled too.
func (e *env) podBarrier(t *testing.T, ns, name, ip string) {
	t.Helper()
	p := e.getProfile(t, ip+":8080")
	p.until("the barrier IP's first answer", func(*pb.DestinationProfile) bool { return true })
	e.c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "barrier"}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{
			{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
			{Name: "linkerd-proxy", Image: "proxy"}}}})
	e.c.SetPodStatus(t, ns, name, kube.PodStatus{Node: "node-1", IPs: []string{ip}, Ready: true})
	p.until("the barrier pod's endpoint", func(p *pb.DestinationProfile) bool { return p.GetEndpoint().GetTlsIdentity() != nil })
}
