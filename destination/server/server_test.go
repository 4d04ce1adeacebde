package server_test

import (
	"context"
	"net"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/l5d-go/l5d/destination/cluster"
	"github.com/l5d-go/l5d/destination/server"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	pb "github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{ControllerManager: true}) }

// env is a destination server over the real API server, reached over gRPC.
type env struct {
	c   *kube.Cluster
	pb  pb.DestinationClient
	reg *prometheus.Registry
}

func start(t *testing.T) *env { return startB(t) }

// startB starts the server; each of with is applied to it before it serves.
func startB(t testing.TB, with ...func(*server.Server)) *env {
	t.Helper()
	c := kube.Shared(t)
	c.Apply(t, "", string(mustRead(t, "../../deploy/crds/serviceprofile.yaml")))
	c.WaitCRD(t, "serviceprofiles.linkerd.io")
	idx, err := cluster.New(c.Client(), c.Dynamic())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := idx.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	def, _ := proxyconf.ParsePorts(proxyconf.DefaultOpaquePorts)
	reg := prometheus.NewRegistry()
	srv, err := server.New(idx, server.Config{ControllerNamespace: "linkerd", ClusterDomain: "cluster.local", TrustDomain: "cluster.local", DefaultOpaquePorts: def}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range with {
		f(srv)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer()
	pb.RegisterDestinationServer(gs, srv)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &env{c: c, pb: pb.NewDestinationClient(cc), reg: reg}
}

// pod creates a running pod with ip behind label app=web; meshed pods carry the proxy.
func (e *env) pod(t *testing.T, ns, name, ip string, meshed, ready bool) {
	containers := []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}
	if meshed {
		containers = append(containers, corev1.Container{Name: "linkerd-proxy", Image: "proxy"})
	}
	e.c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: containers}})
	e.c.SetPodStatus(t, ns, name, kube.PodStatus{Node: "node-1", IPs: []string{ip}, Ready: ready})
}

func (e *env) service(t *testing.T, ns string, annotations map[string]string) {
	e.c.CreateServiceAccount(t, ns, "web")
	_, err := e.c.Client().CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Annotations: annotations},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// watcher accumulates a Get stream into the current endpoint set.
type watcher struct {
	updates chan *pb.Update
	set     map[netip.AddrPort]*pb.WeightedAddr
	last    *pb.Update
}

// get opens a Get stream on path. A Service the server's caches do not hold yet is
// NotFound, so the stream is re-opened (polling, up to 30s) until the server knows it.
func (e *env) get(t *testing.T, path string) *watcher {
	return e.getWith(t, &pb.GetDestination{Scheme: "k8s", Path: path})
}

func (e *env) getWith(t *testing.T, req *pb.GetDestination) *watcher {
	t.Helper()
	var (
		s     grpc.ServerStreamingClient[pb.Update]
		first *pb.Update
	)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if s, err = e.pb.Get(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		first, err = s.Recv()
		if err == nil {
			break
		}
		if status.Code(err) != codes.NotFound || time.Now().After(deadline) {
			t.Fatalf("Get %s: %v", req.GetPath(), err)
		}
		time.Sleep(20 * time.Millisecond) // polling for the informer to see the Service
	}
	w := &watcher{updates: make(chan *pb.Update, 100), set: map[netip.AddrPort]*pb.WeightedAddr{}}
	w.updates <- first
	go func() {
		for {
			u, err := s.Recv()
			if err != nil {
				close(w.updates)
				return
			}
			w.updates <- u
		}
	}()
	return w
}

func addrOf(a *pb.WeightedAddr) netip.AddrPort {
	v := a.GetAddr().GetIp().GetIpv4()
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), uint16(a.GetAddr().GetPort()))
}

// until applies updates until ok holds for the set, or fails after 30s.
func (w *watcher) until(t *testing.T, what string, ok func(w *watcher) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !ok(w) {
		select {
		case u, open := <-w.updates:
			if !open {
				t.Fatalf("%s: stream ended", what)
			}
			w.last = u
			switch x := u.Update.(type) {
			case *pb.Update_Add:
				for _, a := range x.Add.Addrs {
					w.set[addrOf(a)] = a
				}
			case *pb.Update_Remove:
				for _, ta := range x.Remove.Addrs {
					delete(w.set, addrOf(&pb.WeightedAddr{Addr: ta}))
				}
			}
		case <-deadline:
			t.Fatalf("%s: not reached; endpoints %v, last update %v", what, w.addrs(), w.last)
		}
	}
}

func (w *watcher) addrs() []string {
	var out []string
	for ap := range w.set {
		out = append(out, ap.String())
	}
	sort.Strings(out)
	return out
}

func TestGetFollowsPodsAndService(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.c.CreateNode(t, kube.Node{Name: "node-1"})
	e.service(t, ns, nil)
	w := e.get(t, "web."+ns+".svc.cluster.local:80")
	w.until(t, "no endpoints yet", func(w *watcher) bool { return w.last.GetNoEndpoints() != nil && w.last.GetNoEndpoints().Exists })

	e.pod(t, ns, "web-a", "10.1.0.1", true, true)
	e.pod(t, ns, "web-b", "10.1.0.2", false, true)
	w.until(t, "two endpoints", func(w *watcher) bool { return len(w.set) == 2 })
	meshed, plain := w.set[netip.MustParseAddrPort("10.1.0.1:8080")], w.set[netip.MustParseAddrPort("10.1.0.2:8080")]
	if meshed == nil || plain == nil {
		t.Fatalf("endpoints %v, want the pods' IPs on the target port 8080", w.addrs())
	}
	if id := meshed.GetTlsIdentity().GetDnsLikeIdentity().GetName(); id != "web."+ns+".serviceaccount.identity.linkerd.cluster.local" {
		t.Errorf("meshed pod identity %q", id)
	}
	if meshed.GetProtocolHint().GetH2() == nil || meshed.MetricLabels["pod"] != "web-a" || meshed.MetricLabels["serviceaccount"] != "web" {
		t.Errorf("meshed pod hints/labels: %v", meshed)
	}
	if plain.GetTlsIdentity() != nil || plain.GetProtocolHint() != nil {
		t.Errorf("unmeshed pod got identity or hints: %v", plain)
	}
	if add := w.last.GetAdd(); add != nil && (add.MetricLabels["service"] != "web" || add.MetricLabels["namespace"] != ns) {
		t.Errorf("set labels %v", add.MetricLabels)
	}

	e.c.SetPodStatus(t, ns, "web-b", kube.PodStatus{IPs: []string{"10.1.0.2"}, Ready: false})
	w.until(t, "not-ready pod removed", func(w *watcher) bool { return len(w.set) == 1 })

	if err := e.c.Client().CoreV1().Services(ns).Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.until(t, "service deleted", func(w *watcher) bool {
		return w.last.GetNoEndpoints() != nil && !w.last.GetNoEndpoints().Exists && len(w.set) == 0
	})
}

// TestGetRefusesWhatIsNotAService: Get answers as Linkerd's destination does for what is
// not a Service of the cluster (proxies then forward to the original destination): an IP
// or a name outside the cluster domain is InvalidArgument, a Service that does not exist
// is NotFound, an ExternalName Service is InvalidArgument.
func TestGetRefusesWhatIsNotAService(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	if _, err := e.c.Client().CoreV1().Services(ns).Create(t.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	code := func(path string) (codes.Code, string) {
		s, err := e.pb.Get(t.Context(), &pb.GetDestination{Scheme: "k8s", Path: path})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Recv()
		return status.Code(err), status.Convert(err).Message()
	}
	for path, want := range map[string]codes.Code{
		"example.com:443": codes.InvalidArgument,
		"10.1.2.3:8080":   codes.InvalidArgument,
		"missing." + ns + ".svc.cluster.local:80": codes.NotFound,
	} {
		if got, msg := code(path); got != want {
			t.Errorf("Get %s: %v (%s), want %v", path, got, msg, want)
		}
	}
	// The ExternalName Service reaches the caches in a moment; until then it is NotFound.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, msg := code("ext." + ns + ".svc.cluster.local:80")
		if got == codes.InvalidArgument {
			break
		}
		if got != codes.NotFound || time.Now().After(deadline) {
			t.Fatalf("Get of an ExternalName Service: %v (%s), want InvalidArgument", got, msg)
		}
		time.Sleep(20 * time.Millisecond) // polling for the informer to see the Service
	}
}

func TestOpaquePortAnnotationChangesHints(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.c.CreateNode(t, kube.Node{Name: "node-1"})
	e.service(t, ns, map[string]string{"config.linkerd.io/opaque-ports": "8080"})
	e.pod(t, ns, "web-a", "10.2.0.1", true, true)
	w := e.get(t, "web."+ns+".svc.cluster.local:80")
	w.until(t, "opaque endpoint", func(w *watcher) bool {
		a := w.set[netip.MustParseAddrPort("10.2.0.1:8080")]
		return a != nil && a.GetProtocolHint().GetOpaqueTransport().GetInboundPort() == 4143
	})
	ps, err := e.pb.GetProfile(t.Context(), &pb.GetDestination{Path: "web." + ns + ".svc.cluster.local:80"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ps.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if p.FullyQualifiedName != "web."+ns+".svc.cluster.local" || p.RetryBudget.GetRetryRatio() != 0.2 {
		t.Errorf("profile %v", p)
	}
	// The pod address resolves to its endpoint, so direct connections still get mTLS.
	ps, err = e.pb.GetProfile(t.Context(), &pb.GetDestination{Path: "10.2.0.1:8080"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = ps.Recv(); err != nil || p.Endpoint.GetTlsIdentity() == nil {
		t.Fatalf("pod-address profile %v %v", p, err)
	}
}

func TestServiceProfileRoutesAndPrecedence(t *testing.T) {
	e := start(t)
	ns, client := e.c.Namespace(t), e.c.Namespace(t)
	e.c.CreateNode(t, kube.Node{Name: "node-1"})
	e.service(t, ns, nil)
	fqdn := "web." + ns + ".svc.cluster.local"
	sp := func(inNS, route string) string {
		return `apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: ` + fqdn + `, namespace: ` + inNS + `}
spec:
  retryBudget: {retryRatio: 0.5, minRetriesPerSecond: 3, ttl: 5s}
  routes:
  - name: ` + route + `
    condition: {all: [{method: GET}, {pathRegex: '/books/[^/]*'}]}
    isRetryable: true
    timeout: 300ms
    responseClasses:
    - condition: {status: {min: 500, max: 599}}
      isFailure: true
`
	}
	ps, err := e.pb.GetProfile(t.Context(), &pb.GetDestination{Path: fqdn + ":80", ContextToken: `{"ns":"` + client + `"}`})
	if err != nil {
		t.Fatal(err)
	}
	next := func(what string, ok func(*pb.DestinationProfile) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			p, err := ps.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if ok(p) {
				return
			}
		}
		t.Fatalf("%s: not reached", what)
	}
	route := func(p *pb.DestinationProfile) string {
		if len(p.Routes) == 0 {
			return ""
		}
		return p.Routes[0].MetricsLabels["route"]
	}
	next("default profile", func(p *pb.DestinationProfile) bool { return len(p.Routes) == 0 })
	e.c.Apply(t, ns, sp(ns, "server-side"))
	next("service namespace profile", func(p *pb.DestinationProfile) bool {
		r := p.GetRoutes()
		return route(p) == "server-side" && r[0].IsRetryable && r[0].Timeout.AsDuration() == 300*time.Millisecond &&
			len(r[0].Condition.GetAll().GetMatches()) == 2 && r[0].ResponseClasses[0].IsFailure && p.RetryBudget.GetRetryRatio() == 0.5
	})
	e.c.Apply(t, client, sp(client, "client-side"))
	next("client namespace wins", func(p *pb.DestinationProfile) bool { return route(p) == "client-side" })
	if err := e.c.Dynamic().Resource(cluster.ServiceProfiles).Namespace(client).Delete(t.Context(), fqdn, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	next("back to the service namespace", func(p *pb.DestinationProfile) bool { return route(p) == "server-side" })
}

// TestNamedOpaquePorts: config.linkerd.io/opaque-ports names resolve as Linkerd resolves
// them, a pod's against its container ports and a Service's against its ports. (Before the
// shared reader, destination ignored names that the policy controller accepted.)
func TestNamedOpaquePorts(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.c.CreateNode(t, kube.Node{Name: "node-1"})
	e.service(t, ns, map[string]string{"config.linkerd.io/opaque-ports": "http"})
	e.c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns,
		Annotations: map[string]string{"config.linkerd.io/opaque-ports": "mysql, not-a-port"}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{
			{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{Name: "mysql", ContainerPort: 3307}, {ContainerPort: 8080}}},
			{Name: "linkerd-proxy", Image: "proxy"}}}})
	e.c.SetPodStatus(t, ns, "db", kube.PodStatus{Node: "node-1", IPs: []string{"10.2.0.7"}, Ready: true})
	for _, tc := range []struct {
		path   string
		opaque bool
	}{
		{"web." + ns + ".svc.cluster.local:80", true}, // the Service port named http
		{"10.2.0.7:3307", true},                       // the container port named mysql
		{"10.2.0.7:8080", false},                      // the bad item is skipped, nothing else
	} {
		p := e.getProfile(t, tc.path)
		p.until(tc.path+" resolved", func(p *pb.DestinationProfile) bool {
			return p.FullyQualifiedName != "" || p.GetEndpoint() != nil
		})
		ps, err := e.pb.GetProfile(t.Context(), &pb.GetDestination{Path: tc.path})
		if err != nil {
			t.Fatal(err)
		}
		got, err := ps.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if got.OpaqueProtocol != tc.opaque {
			t.Errorf("GetProfile(%s).OpaqueProtocol = %v, want %v", tc.path, got.OpaqueProtocol, tc.opaque)
		}
	}
}
