package app

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/l5d-go/l5d/pkg/eventually"
)

// TestGRPCStreamingThroughChain runs real gRPC services through both proxies: a
// bidirectional stream (reflection), a server stream that must deliver updates as they
// happen (health Watch), and an error status carried in trailers.
func TestGRPCStreamingThroughChain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	go srv.Serve(ln)
	defer srv.Stop()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)

	ch := newChain(t, ln.Addr().(*net.TCPAddr).AddrPort(), nil)
	conn, err := grpc.NewClient("passthrough:///grpc.example:8080",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", ch.entry.String())
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Bidirectional: each request is answered before the next is sent.
	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := rs.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"}}); err != nil {
			t.Fatal(err)
		}
		resp, err := rs.Recv()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if len(resp.GetListServicesResponse().GetService()) < 2 {
			t.Fatalf("reply %d lists %v", i, resp.GetListServicesResponse())
		}
	}
	rs.CloseSend()

	// Server streaming: a status change arrives while the stream stays open.
	hc := healthpb.NewHealthClient(conn)
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch update: %v %v", m, err)
	}
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("second watch update: %v %v", m, err)
	}

	// Unary error: the grpc-status trailer reaches the client and counts as a failure.
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("check of unknown service: %v; want NotFound", err)
	}
	eventually.True(t, "gRPC failure in metrics", func() bool {
		return strings.Contains(scrape(t, ch.out), `status_code="200",classification="failure"} 1`)
	})
}
