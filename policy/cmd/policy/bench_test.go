package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// Shape of the benchmark's cluster: benchPods pods with two ports each, one Server per
// port (benchServers), one AuthorizationPolicy per Server requiring one of benchAuthns
// MeshTLSAuthentications and one of benchAuthns NetworkAuthentications, so that each
// authentication is shared by benchServers/benchAuthns Servers.
const (
	benchNS      = "policy-bench"
	benchPods    = 500
	benchServers = 2 * benchPods
	benchAuthns  = 100
)

// fixture is the cluster state and the policy process, built once per test binary and
// shared by every run of the benchmark.
type fixture struct {
	c    *kube.Cluster
	pid  int
	addr string
}

var (
	fixtureOnce sync.Once
	shared      *fixture
	fixtureErr  error
	generation  atomic.Int64
)

// BenchmarkPolicyFanout measures the policy controller (bin/policy as its own process)
// holding 1,000 Servers, each with an AuthorizationPolicy requiring a MeshTLSAuthentication
// and a NetworkAuthentication, across 500 pods, with WatchPort streams open on the Servers'
// ports. Each iteration changes one MeshTLSAuthentication's identities at the API server
// and waits for every stream of the 10 Servers whose policy uses it to receive the new
// identity; p50/p99 are over all those stream updates. rss-MB is the policy process's
// resident memory with the streams open. streams=500 is the baseline for streams=2000.
func BenchmarkPolicyFanout(b *testing.B) {
	for _, streams := range []int{500, 2000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) { benchFanout(b, streams) })
	}
}

type update struct {
	at  time.Time
	ids []string
}

func benchFanout(b *testing.B, streams int) {
	f := setup(b)
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	const conns = 20 // streams are spread over connections, as proxies each have their own
	var clients []pb.InboundServerPoliciesClient
	for range conns {
		cc, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		clients = append(clients, pb.NewInboundServerPoliciesClient(cc))
	}
	// Stream s watches Server s%benchServers; it is ready once it has that Server's policy.
	subs := make([]chan update, streams)
	var ready sync.WaitGroup
	var incomplete atomic.Int64
	for s := range streams {
		srv := s % benchServers
		pod, port := srv/2, uint32(8080+srv%2*1010)
		stream, err := clients[s%conns].WatchPort(ctx, &pb.PortSpec{Workload: benchNS + ":" + podName(pod), Port: port})
		if err != nil {
			b.Fatal(err)
		}
		subs[s] = make(chan update, 64)
		ready.Add(1)
		go func(got chan update) {
			first := true
			for {
				u, err := stream.Recv()
				if err != nil {
					if first {
						ready.Done()
					}
					return
				}
				if first {
					if len(u.GetAuthorizations()) != 1 {
						incomplete.Add(1)
					}
					first = false
					ready.Done()
					continue
				}
				select {
				case got <- update{at: time.Now(), ids: identities(u)}:
				default:
				}
			}
		}(subs[s])
	}
	ready.Wait()
	if n := incomplete.Load(); n > 0 {
		b.Fatalf("%d streams started without their Server's AuthorizationPolicy", n)
	}
	rss := rssMB(f.pid)
	b.ResetTimer()
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		k := i % benchAuthns
		marker := fmt.Sprintf("rev-%d.bench.serviceaccount.identity.linkerd.cluster.local", generation.Add(1))
		patch := fmt.Sprintf(`{"spec":{"identities":[%q,%q]}}`, clientIdentity(k), marker)
		start := time.Now()
		if _, err := f.c.Dynamic().Resource(api.MeshTLSAuthentications).Namespace(benchNS).Patch(ctx, fmt.Sprintf("mtls-%d", k),
			types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			b.Fatal(err)
		}
		deadline := time.After(time.Minute)
		for s := range streams {
			if s%benchServers%benchAuthns != k {
				continue
			}
		wait:
			for {
				select {
				case u := <-subs[s]:
					if slices.Contains(u.ids, marker) {
						lat = append(lat, u.at.Sub(start))
						break wait
					}
				case <-deadline:
					b.Fatalf("stream %d never saw %s", s, marker)
				}
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.ReportMetric(rss, "rss-MB")
}

// identities lists the client identities of every authorization in an update.
func identities(s *pb.Server) []string {
	var out []string
	for _, a := range s.GetAuthorizations() {
		for _, id := range a.GetAuthentication().GetMeshTLS().GetIdentities().GetIdentities() {
			out = append(out, id.GetName())
		}
	}
	return out
}

func podName(i int) string { return fmt.Sprintf("web-%d", i) }
func clientIdentity(k int) string {
	return fmt.Sprintf("client-%d.bench.serviceaccount.identity.linkerd.cluster.local", k)
}

// setup builds the fixture once: the objects at the API server, then the policy process,
// started once they exist and ready once its caches hold them.
func setup(b *testing.B) *fixture {
	b.Helper()
	c := kube.Shared(b)
	fixtureOnce.Do(func() { shared, fixtureErr = build(c) })
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return shared
}

func build(c *kube.Cluster) (*fixture, error) {
	ctx := context.Background()
	crds, err := os.ReadFile("../../../deploy/crds/policy.yaml")
	if err != nil {
		return nil, err
	}
	if _, err := c.ApplyYAML(ctx, "", string(crds)); err != nil {
		return nil, fmt.Errorf("policy CRDs: %w", err)
	}
	if err := waitCRDs(ctx, c); err != nil {
		return nil, err
	}
	if _, err := c.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNS}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("namespace: %w", err)
	}
	// No controller-manager runs: the pods' ServiceAccount is created here.
	if _, err := c.Client().CoreV1().ServiceAccounts(benchNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("service account: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range benchPods {
		g.Go(func() error {
			_, err := c.Client().CoreV1().Pods(benchNS).Create(gctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: podName(i), Labels: map[string]string{"app": podName(i)}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 8080}, {Name: "admin", ContainerPort: 9090}}}}},
			}, metav1.CreateOptions{})
			return err
		})
	}
	for k := range benchAuthns {
		g.Go(func() error {
			return create(gctx, c, api.MeshTLSAuthentications, "MeshTLSAuthentication", fmt.Sprintf("mtls-%d", k),
				map[string]any{"identities": []any{clientIdentity(k)}})
		})
		g.Go(func() error {
			return create(gctx, c, api.NetworkAuthentications, "NetworkAuthentication", fmt.Sprintf("net-%d", k),
				map[string]any{"networks": []any{map[string]any{"cidr": fmt.Sprintf("10.%d.0.0/16", k), "except": []any{fmt.Sprintf("10.%d.255.0/24", k)}}}})
		})
	}
	for s := range benchServers {
		name := fmt.Sprintf("srv-%d", s)
		var port any = int64(8080)
		proto := "HTTP/1"
		if s%2 == 1 {
			port, proto = "admin", "HTTP/2"
		}
		g.Go(func() error {
			return create(gctx, c, api.Servers, "Server", name, map[string]any{"podSelector": map[string]any{"matchLabels": map[string]any{"app": podName(s / 2)}},
				"port": port, "proxyProtocol": proto})
		})
		g.Go(func() error {
			return create(gctx, c, api.AuthorizationPolicies, "AuthorizationPolicy", "authz-"+name, map[string]any{
				"targetRef": map[string]any{"group": api.Group, "kind": "Server", "name": name},
				"requiredAuthenticationRefs": []any{
					map[string]any{"group": api.Group, "kind": "MeshTLSAuthentication", "name": fmt.Sprintf("mtls-%d", s%benchAuthns)},
					map[string]any{"group": api.Group, "kind": "NetworkAuthentication", "name": fmt.Sprintf("net-%d", s%benchAuthns)},
				}})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("creating the benchmark's objects: %w", err)
	}
	return startPolicy(c)
}

func create(ctx context.Context, c *kube.Cluster, gvr schema.GroupVersionResource, kind, name string, spec map[string]any) error {
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": gvr.GroupVersion().String(), "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": benchNS}, "spec": spec}}
	if _, err := c.Dynamic().Resource(gvr).Namespace(benchNS).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	return nil
}

func waitCRDs(ctx context.Context, c *kube.Cluster) error {
	deadline := time.Now().Add(time.Minute)
	for _, gvr := range []schema.GroupVersionResource{api.Servers, api.AuthorizationPolicies, api.MeshTLSAuthentications, api.NetworkAuthentications} {
		for {
			_, err := c.Dynamic().Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{Limit: 1})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not served: %w", gvr.Resource, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// startPolicy builds bin/policy and runs it against the cluster on loopback ports, killed
// when the benchmark process exits; it returns once /ready answers 200.
func startPolicy(c *kube.Cluster) (*fixture, error) {
	dir, err := os.MkdirTemp("", "policy-bench-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "policy")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	addr, admin := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	logf, err := os.Create(filepath.Join(dir, "policy.log"))
	if err != nil {
		return nil, err
	}
	started := make(chan error, 1)
	var pid int
	go func() {
		// Pdeathsig follows the thread that started the child: keep this one alive.
		runtime.LockOSThread()
		cmd := exec.Command(bin, "-kubeconfig", c.Kubeconfig(), "-addr", addr, "-admin-addr", admin, "-log-level", "warn")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		pid = cmd.Process.Pid
		started <- nil
		cmd.Wait()
		select {} // never release the thread
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return &fixture{c: c, pid: pid, addr: addr}, nil
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("policy not ready after 2m: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePorts(n int) ([]int, error) {
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// rssMB is the resident memory of process pid, from /proc.
func rssMB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb / 1024
		}
	}
	return 0
}
