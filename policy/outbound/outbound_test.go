package outbound_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/policy/outbound"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

type env struct {
	c      *kube.Cluster
	client pb.OutboundPoliciesClient
}

func start(t *testing.T) *env {
	t.Helper()
	opaque, _ := proxyconf.ParsePorts(proxyconf.DefaultOpaquePorts)
	return startWith(t, outbound.Config{ClusterDomain: "cluster.local", DefaultOpaquePorts: opaque})
}

// startWith serves the outbound API with cfg.
func startWith(t *testing.T, cfg outbound.Config) *env {
	t.Helper()
	c := kube.Shared(t)
	installRouteCRDs(t, c)
	idx, err := outbound.NewIndex(k8s.NewInformers(c.Client(), c.Dynamic()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := idx.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	srv := outbound.New(idx, cfg, slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterOutboundPoliciesServer(gs, srv)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &env{c: c, client: pb.NewOutboundPoliciesClient(cc)}
}

func (e *env) service(t *testing.T, ns, name string, annotations map[string]string) *corev1.Service {
	t.Helper()
	s, err := e.c.Client().CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "db", Port: 5432}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// get polls Get until the informer cache has the object and the answer passes ok.
func (e *env) get(t *testing.T, spec *pb.TrafficSpec, ok func(*pb.OutboundPolicy) bool) *pb.OutboundPolicy {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, err := e.client.Get(context.Background(), spec)
		if err == nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get(%v): last answer %v, %v", spec, p, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func authority(a string) *pb.TrafficSpec {
	return &pb.TrafficSpec{SourceWorkload: "ns:client", Target: &pb.TrafficSpec_Authority{Authority: a}}
}

func addr(ap netip.AddrPort) *pb.TrafficSpec {
	return &pb.TrafficSpec{SourceWorkload: "ns:client", Target: &pb.TrafficSpec_Addr{Addr: netconv.TCPAddress(ap)}}
}

func anyPolicy(*pb.OutboundPolicy) bool { return true }

func isDetect(p *pb.OutboundPolicy) bool { return p.GetProtocol().GetDetect() != nil }
func isOpaque(p *pb.OutboundPolicy) bool { return p.GetProtocol().GetOpaque() != nil }

// checkDefaultRoute asserts the HTTP/1 default route sends everything to the Service.
func checkDefaultRoute(t *testing.T, p *pb.OutboundPolicy, ns, name string, port uint32) {
	t.Helper()
	if md := p.GetMetadata().GetResource(); md.GetKind() != "Service" || md.GetName() != name || md.GetNamespace() != ns || md.GetPort() != port {
		t.Errorf("metadata = %v, want Service %s/%s port %d", p.GetMetadata(), ns, name, port)
	}
	d := p.GetProtocol().GetDetect()
	if d.GetTimeout().AsDuration() != 10*time.Second {
		t.Errorf("detect timeout = %v, want 10s", d.GetTimeout().AsDuration())
	}
	for _, routes := range [][]*pb.HttpRoute{d.GetHttp1().GetRoutes(), d.GetHttp2().GetRoutes()} {
		if len(routes) != 1 || len(routes[0].GetRules()) != 1 {
			t.Fatalf("routes = %v, want one route with one rule", routes)
		}
		r := routes[0].GetRules()[0]
		if m := r.GetMatches(); len(m) != 1 || m[0].GetPath().GetPrefix() != "/" {
			t.Errorf("matches = %v, want path prefix /", m)
		}
		bs := r.GetBackends().GetFirstAvailable().GetBackends()
		if len(bs) != 1 {
			t.Fatalf("backends = %v, want one", bs)
		}
		b := bs[0].GetBackend()
		want := name + "." + ns + ".svc.cluster.local:80"
		if got := b.GetBalancer().GetDiscovery().GetDst().GetPath(); got != want {
			t.Errorf("discovery path = %q, want %q", got, want)
		}
		ew := b.GetBalancer().GetPeakEwma()
		if ew.GetDefaultRtt().AsDuration() != 30*time.Millisecond || ew.GetDecay().AsDuration() != 10*time.Second {
			t.Errorf("peak ewma = %v, want rtt 30ms decay 10s", ew)
		}
		if b.GetQueue().GetCapacity() != 100 || b.GetQueue().GetFailfastTimeout().AsDuration() != 3*time.Second {
			t.Errorf("queue = %v, want 100 / 3s", b.GetQueue())
		}
	}
}

func TestServiceAuthorityAndClusterIP(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	svc := e.service(t, ns, "web", nil)
	p := e.get(t, authority("web."+ns+".svc.cluster.local:80"), isDetect)
	checkDefaultRoute(t, p, ns, "web", 80)

	ip := netip.MustParseAddr(svc.Spec.ClusterIP)
	p = e.get(t, addr(netip.AddrPortFrom(ip, 80)), isDetect)
	checkDefaultRoute(t, p, ns, "web", 80)

	// 5432 is in the default opaque list.
	p = e.get(t, authority("web."+ns+".svc.cluster.local:5432"), anyPolicy)
	if !isOpaque(p) {
		t.Fatalf("port 5432 protocol = %v, want opaque", p.GetProtocol())
	}
	b := p.GetProtocol().GetOpaque().GetRoutes()[0].GetRules()[0].GetBackends().GetFirstAvailable().GetBackends()[0].GetBackend()
	if got, want := b.GetBalancer().GetDiscovery().GetDst().GetPath(), "web."+ns+".svc.cluster.local:5432"; got != want {
		t.Errorf("opaque backend path = %q, want %q", got, want)
	}
}

func TestOpaqueAnnotation(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.service(t, ns, "db", map[string]string{outbound.OpaquePortsAnnotation: "80"})
	e.get(t, authority("db."+ns+".svc.cluster.local:80"), isOpaque)
	// The annotation replaces the default list: 5432 is no longer opaque.
	e.get(t, authority("db."+ns+".svc.cluster.local:5432"), isDetect)
}

func TestUnknownTargets(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	_, err := e.client.Get(context.Background(), authority("missing."+ns+".svc.cluster.local:80"))
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown service authority: error %v, want NotFound", err)
	}
	_, err = e.client.Get(context.Background(), authority("example.com:80"))
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("non-service authority: error %v, want InvalidArgument", err)
	}
	_, err = e.client.Get(context.Background(), &pb.TrafficSpec{})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("no target: error %v, want InvalidArgument", err)
	}
	// An address that is no Service: opaque forward to that address.
	ap := netip.MustParseAddrPort("127.0.0.42:7000")
	p, err := e.client.Get(context.Background(), addr(ap))
	if err != nil {
		t.Fatal(err)
	}
	bs := p.GetProtocol().GetOpaque().GetRoutes()[0].GetRules()[0].GetBackends().GetFirstAvailable().GetBackends()
	got, _ := netconv.AddrPort(bs[0].GetBackend().GetForward().GetAddr())
	if len(bs) != 1 || got != ap {
		t.Errorf("forward backend = %v, want %v", bs, ap)
	}
}

func TestWatchFollowsAnnotation(t *testing.T) {
	e := start(t)
	ns := e.c.Namespace(t)
	e.service(t, ns, "web", nil)
	spec := authority("web." + ns + ".svc.cluster.local:80")
	e.get(t, spec, isDetect)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := e.client.Watch(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.Recv()
	if err != nil || !isDetect(first) {
		t.Fatalf("first update = %v, %v; want detect", first, err)
	}
	patch := `{"metadata":{"annotations":{"` + outbound.OpaquePortsAnnotation + `":"80"}}}`
	if _, err := e.c.Client().CoreV1().Services(ns).Patch(ctx, "web", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	next, err := w.Recv()
	if err == io.EOF || err != nil || !isOpaque(next) {
		t.Fatalf("update after annotation = %v, %v; want opaque", next, err)
	}
}
