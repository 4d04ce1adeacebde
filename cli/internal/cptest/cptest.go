// Package cptest runs, for the CLI's tests, the real control-plane gRPC servers the
// diagnostics commands talk to (destination, inbound and outbound policy) over a test/kube
// cluster on loopback, and a stand-in kubelet that serves the API server's port-forward
// requests, since test/kube has no kubelets.
package cptest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l5d-go/l5d/cli/install"
	"github.com/l5d-go/l5d/destination/cluster"
	"github.com/l5d-go/l5d/destination/server"
	"github.com/l5d-go/l5d/pkg/k8s"
	"github.com/l5d-go/l5d/policy/inbound"
	"github.com/l5d-go/l5d/policy/outbound"
	pb "github.com/l5d-go/l5d/proto/gen/destination"
	pbin "github.com/l5d-go/l5d/proto/gen/inbound"
	pbout "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/test/kube"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// ApplyCRDs applies Linkerd's CRDs (as `linkerd install --crds` renders them) to c.
func ApplyCRDs(t testing.TB, c *kube.Cluster) {
	t.Helper()
	crds, err := install.Render(install.Options{CRDs: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, "default", string(crds))
}

// serve runs g on a loopback port until t ends and returns its address.
func serve(t testing.TB, g *grpc.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return l.Addr().String()
}

// Destination runs the real Destination API over c and returns its loopback address.
func Destination(t testing.TB, c *kube.Cluster) string {
	t.Helper()
	ApplyCRDs(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	idx, err := cluster.New(c.Client(), c.Dynamic())
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	svc, err := server.New(idx, server.Config{ControllerNamespace: "linkerd", ClusterDomain: "cluster.local", TrustDomain: "cluster.local"}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pb.RegisterDestinationServer(g, svc)
	return serve(t, g)
}

// Policy runs the real inbound and outbound policy APIs over c (cluster default policy
// all-unauthenticated) and returns their loopback address.
func Policy(t testing.TB, c *kube.Cluster) string {
	t.Helper()
	ApplyCRDs(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// One informer set for both indexes, as the policy controller has.
	inf := k8s.NewInformers(c.Client(), c.Dynamic())
	idx, err := inbound.NewIndex(inf)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	outIdx, err := outbound.NewIndex(inf)
	if err != nil {
		t.Fatal(err)
	}
	if err := outIdx.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pbin.RegisterInboundServerPoliciesServer(g, inbound.New(idx, inbound.Config{
		DefaultPolicy: inbound.AllUnauthenticated, ControllerNS: "linkerd", TrustDomain: "cluster.local", DetectTimeout: 10 * time.Second,
	}, slog.New(slog.DiscardHandler)))
	pbout.RegisterOutboundPoliciesServer(g, outbound.New(outIdx, outbound.Config{DetectTimeout: 10 * time.Second}, slog.New(slog.DiscardHandler)))
	return serve(t, g)
}

// Kubelet is a stand-in kubelet: it answers the API server's /portForward/NS/POD
// requests as a kubelet does (SPDY, protocol portforward.k8s.io, an error and a data
// stream per forwarded connection), connecting each connection for a pod port to the
// loopback address Ports maps it to, whatever the pod.
type Kubelet struct {
	// Node is the node whose kubelet this is: InternalIP 127.0.0.1 (its only address)
	// and the stand-in's port as kubelet port.
	Node *corev1.Node
	// Ports maps a pod port ("8086") to a loopback host:port.
	Ports map[string]string

	mu    sync.Mutex
	paths []string
}

// StartKubelet creates a node in c whose kubelet is a Kubelet forwarding to ports.
func StartKubelet(t testing.TB, c *kube.Cluster, ports map[string]string) *Kubelet {
	t.Helper()
	k := &Kubelet{Ports: ports}
	srv := kube.ServeHTTPS(t, k)
	_, portText, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatal(err)
	}
	node := c.CreateNode(t, kube.Node{InternalIP: "127.0.0.1"})
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	// Only the InternalIP: the API server would otherwise try the node's Hostname first.
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	if k.Node, err = c.Client().CoreV1().Nodes().UpdateStatus(context.Background(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return k
}

// Paths returns the request paths the kubelet was asked for, in order.
func (k *Kubelet) Paths() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.paths...)
}

// ServeHTTP implements the kubelet's port-forward endpoint.
func (k *Kubelet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.paths = append(k.paths, r.URL.Path)
	k.mu.Unlock()
	if _, err := httpstream.Handshake(r, w, []string{"portforward.k8s.io"}); err != nil {
		return
	}
	streams := make(chan httpstream.Stream, 4)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(s httpstream.Stream, _ <-chan struct{}) error {
		streams <- s
		return nil
	})
	if conn == nil {
		return
	}
	defer conn.Close()
	errStreams := map[string]httpstream.Stream{}
	for {
		select {
		case <-conn.CloseChan():
			return
		case s := <-streams:
			id := s.Headers().Get("requestID")
			if s.Headers().Get("streamType") == "error" {
				errStreams[id] = s
				continue
			}
			go k.forward(s, errStreams[id])
		}
	}
}

func (k *Kubelet) forward(data, errStream httpstream.Stream) {
	defer data.Close()
	port := data.Headers().Get("port")
	target, ok := k.Ports[port]
	var c net.Conn
	var err error
	if ok {
		c, err = net.Dial("tcp", target)
	} else {
		err = fmt.Errorf("nothing listens on port %s", port)
	}
	if err != nil {
		if errStream != nil {
			fmt.Fprintf(errStream, "forwarding port %s: %v", port, err)
			errStream.Close()
		}
		return
	}
	defer c.Close()
	go func() {
		io.Copy(c, data)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	io.Copy(data, c)
}
