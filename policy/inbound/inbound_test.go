package inbound_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	policyapi "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/policy/inbound"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

type env struct {
	c      *kube.Cluster
	client pb.InboundServerPoliciesClient
}

func start(t *testing.T, defaultPolicy string) *env {
	t.Helper()
	c := kube.Shared(t)
	crds, err := os.ReadFile("../../deploy/crds/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "", string(crds))
	for _, n := range []string{"servers", "serverauthorizations", "authorizationpolicies", "meshtlsauthentications", "networkauthentications", "httproutes", "httplocalratelimitpolicies", "egressnetworks"} {
		c.WaitCRD(t, n+".policy.linkerd.io")
	}
	// The Gateway API route CRDs, from the gateway-api module the controller builds with.
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("locating the gateway-api module: %v", err)
	}
	for _, n := range []string{"httproutes", "grpcroutes"} {
		crd, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "config/crd/standard/gateway.networking.k8s.io_"+n+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		c.Apply(t, "", string(crd))
		c.WaitCRD(t, n+".gateway.networking.k8s.io")
	}
	idx, err := inbound.NewIndex(k8s.NewInformers(c.Client(), c.Dynamic()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := idx.Start(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	opaque, _ := proxyconf.ParsePorts("25,587,3306,4444,5432,6379,9300,11211")
	srv := inbound.New(idx, inbound.Config{DefaultPolicy: defaultPolicy, ControllerNS: "linkerd", TrustDomain: "cluster.local",
		ClusterNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, DefaultOpaquePorts: opaque}, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer()
	pb.RegisterInboundServerPoliciesServer(gs, srv)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &env{c: c, client: pb.NewInboundServerPoliciesClient(cc)}
}

func (e *env) pod(t *testing.T, ns, name string, annotations map[string]string) {
	e.c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "web"}, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}}})
}

// poll calls ok until it holds, failing the test with describe() after a deadline.
func (e *env) poll(t *testing.T, what string, ok func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached; last:\n%s", what, describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getPort answers the policy of ns:pod's port, waiting for a new pod to reach the
// controller's cache.
func (e *env) getPort(t *testing.T, ns, pod string, port uint32) *pb.Server {
	t.Helper()
	return e.getWorkloadPort(t, ns+":"+pod, port)
}

// getWorkloadPort is getPort for a workload in any of the forms the API takes.
func (e *env) getWorkloadPort(t *testing.T, workload string, port uint32) *pb.Server {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := e.client.GetPort(t.Context(), &pb.PortSpec{Workload: workload, Port: port})
		if err == nil {
			return s
		}
		if status.Code(err) != codes.NotFound || time.Now().After(deadline) {
			t.Fatalf("GetPort %s %d: %v", workload, port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ipv4(a *pb.Network) string {
	v := a.GetNet().GetIp().GetIpv4()
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), int(a.GetNet().GetPrefixLen())).String()
}

func TestDefaultPolicies(t *testing.T) {
	e := start(t, inbound.AllUnauthenticated)
	ns := e.c.Namespace(t, kube.WithAnnotations(map[string]string{"config.linkerd.io/default-inbound-policy": "cluster-authenticated"}))
	e.pod(t, ns, "ns-default", nil)
	e.pod(t, ns, "denied", map[string]string{"config.linkerd.io/default-inbound-policy": "deny"})
	plain := e.c.Namespace(t)
	e.pod(t, plain, "cluster-default", nil)
	for _, tc := range []struct {
		workload, name string
		check          func(*pb.Server) bool
	}{
		{`{"ns":"` + plain + `","pod":"cluster-default"}`, "all-unauthenticated", func(s *pb.Server) bool {
			a := s.Authorizations
			return len(a) == 1 && a[0].Authentication.GetUnauthenticated() != nil && ipv4(a[0].Networks[0]) == "0.0.0.0/0"
		}},
		{ns + ":ns-default", "cluster-authenticated", func(s *pb.Server) bool {
			a := s.Authorizations
			return len(a) == 1 && a[0].Authentication.GetMeshTLS() != nil && ipv4(a[0].Networks[0]) == "10.0.0.0/8"
		}},
		{ns + ":denied", "deny", func(s *pb.Server) bool { return len(s.Authorizations) == 0 }},
	} {
		s := e.getWorkloadPort(t, tc.workload, 8080)
		if s.Labels["name"] != tc.name || s.Labels["kind"] != "default" || !tc.check(s) || s.Protocol.GetDetect() == nil {
			t.Errorf("%s: got %v, want default %s", tc.workload, s, tc.name)
		}
	}
	// An opaque port is opaque.
	s, err := e.client.GetPort(t.Context(), &pb.PortSpec{Workload: plain + ":cluster-default", Port: 3306})
	if err != nil || s.Protocol.GetOpaque() == nil {
		t.Errorf("port 3306: %v %v", s, err)
	}
	// Bad input gets a clear error.
	for _, w := range []string{"nonsense", `{"ns":`} {
		if _, err := e.client.GetPort(t.Context(), &pb.PortSpec{Workload: w, Port: 80}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("workload %q: %v", w, err)
		}
	}
	if _, err := e.client.GetPort(t.Context(), &pb.PortSpec{Workload: plain + ":missing", Port: 80}); status.Code(err) != codes.NotFound {
		t.Errorf("missing pod: %v", err)
	}
}

func TestServerAndAuthorizationPolicyWatch(t *testing.T) {
	e := start(t, inbound.AllUnauthenticated)
	ns := e.c.Namespace(t)
	e.pod(t, ns, "web-0", nil)
	w, err := e.client.WatchPort(t.Context(), &pb.PortSpec{Workload: `{"ns":"` + ns + `","pod":"web-0"}`, Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	next := func(what string, ok func(*pb.Server) bool) *pb.Server {
		t.Helper()
		for {
			s, err := w.Recv()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if ok(s) {
				return s
			}
		}
	}
	next("default policy", func(s *pb.Server) bool { return s.Labels["kind"] == "default" })
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1beta1
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
  proxyProtocol: HTTP/1
`)
	next("Server with no authorization denies", func(s *pb.Server) bool {
		return s.Labels["name"] == "web-http" && s.Protocol.GetHttp1() != nil && len(s.Authorizations) == 0
	})
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: web-clients}
spec:
  identities: ["*.other.serviceaccount.identity.linkerd.cluster.local"]
  identityRefs: [{kind: ServiceAccount, name: client}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: pods}
spec:
  networks: [{cidr: 10.0.0.0/8, except: [10.9.0.0/16]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-authz}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web-clients}
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: pods}
`)
	s := next("authorization", func(s *pb.Server) bool { return len(s.Authorizations) == 1 })
	a := s.Authorizations[0]
	ids := a.Authentication.GetMeshTLS().GetIdentities()
	if a.Labels["name"] != "web-authz" || len(ids.GetIdentities()) != 1 ||
		ids.GetIdentities()[0].Name != "client."+ns+".serviceaccount.identity.linkerd.cluster.local" ||
		len(ids.GetSuffixes()) != 1 || ids.GetSuffixes()[0].Parts[0] != "other" {
		t.Errorf("authorization %v", a)
	}
	if len(a.Networks) != 1 || ipv4(a.Networks[0]) != "10.0.0.0/8" || len(a.Networks[0].Except) != 1 {
		t.Errorf("networks %v", a.Networks)
	}
	// A network the controller cannot parse must not widen the policy to all networks.
	e.c.Apply(t, ns, `apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: pods}
spec:
  networks: [{cidr: 10.0.0.0/8, except: [not-a-cidr]}]
`)
	next("bad network permits nothing", func(s *pb.Server) bool { return len(s.Authorizations) == 0 })
	if err := e.c.Dynamic().Resource(apiServers()).Namespace(ns).Delete(t.Context(), "web-http", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	next("back to the default", func(s *pb.Server) bool { return s.Labels["kind"] == "default" })
}

func apiServers() schema.GroupVersionResource { return policyapi.Servers }

func policyHTTPRoutes() schema.GroupVersionResource { return policyapi.HTTPRoutes }

func rateLimits() schema.GroupVersionResource { return policyapi.HTTPLocalRateLimitPolicies }

func deleteOptions() metav1.DeleteOptions { return metav1.DeleteOptions{} }
