package app

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/grpcroute"
	pbmeta "github.com/l5d-go/l5d/proto/gen/meta"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// greeter serves demo.Greeter/Hello with grpc-go: fail decides, per call, whether it
// answers UNAVAILABLE, which grpc-go sends as a trailers-only response (one HEADERS
// frame carrying grpc-status, ending the stream). It returns its address and call count.
func greeter(t *testing.T, fail func(n int64) bool) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	calls := new(atomic.Int64)
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var in emptypb.Empty
		if err := stream.RecvMsg(&in); err != nil {
			return err
		}
		if fail(calls.Add(1)) {
			return status.Error(codes.Unavailable, "failing")
		}
		return stream.SendMsg(&emptypb.Empty{})
	}))
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().(*net.TCPAddr).AddrPort(), calls
}

// grpcPolicy is a gRPC policy for svc whose one GRPCRoute sends demo.Greeter to
// web-v2 with retry (nil: none) and the Service's failure accrual (nil: none).
func grpcPolicy(retry *pb.GrpcRoute_Retry, accrual *pb.FailureAccrual) *pb.OutboundPolicy {
	backend := &pb.GrpcRoute_Distribution{Kind: &pb.GrpcRoute_Distribution_FirstAvailable_{FirstAvailable: &pb.GrpcRoute_Distribution_FirstAvailable{
		Backends: []*pb.GrpcRoute_RouteBackend{{Backend: &pb.Backend{Kind: &pb.Backend_Balancer{Balancer: &pb.Backend_BalanceP2C{Discovery: &pb.Backend_EndpointDiscovery{
			Kind: &pb.Backend_EndpointDiscovery_Dst{Dst: &pb.Backend_EndpointDiscovery_DestinationGet{Path: svcV2}}}}}}}}}}}
	return &pb.OutboundPolicy{Protocol: &pb.ProxyProtocol{Kind: &pb.ProxyProtocol_Grpc_{Grpc: &pb.ProxyProtocol_Grpc{
		FailureAccrual: accrual,
		Routes: []*pb.GrpcRoute{{
			Metadata: &pbmeta.Metadata{Kind: &pbmeta.Metadata_Resource{Resource: &pbmeta.Resource{Group: "gateway.networking.k8s.io", Kind: "GRPCRoute", Name: "greeter", Namespace: "ns"}}},
			Rules: []*pb.GrpcRoute_Rule{{
				Matches:  []*grpcroute.GrpcRouteMatch{{Rpc: &grpcroute.GrpcRpcMatch{Service: "demo.Greeter"}}},
				Backends: backend,
				Retry:    retry,
			}},
		}},
	}}}}
}

// greeterConn is a gRPC client connection to svc through the outbound proxy at out.
func greeterConn(t *testing.T, out netip.AddrPort) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+svc,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", out.String())
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func hello(conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return conn.Invoke(ctx, "/demo.Greeter/Hello", &emptypb.Empty{}, &emptypb.Empty{})
}

// TestGRPCTrailersOnlyFailuresAreRetried: a GRPCRoute retrying UNAVAILABLE retries the
// calls its backend fails with a trailers-only response; without the retry they fail.
func TestGRPCTrailersOnlyFailuresAreRetried(t *testing.T) {
	d, op, out := policyProxy(t)
	flaky, calls := greeter(t, func(n int64) bool { return n%2 == 1 })
	d.Set(svcV2, scriptedcp.Endpoint{Addr: flaky})
	op.Set(svc, grpcPolicy(&pb.GrpcRoute_Retry{MaxRetries: 2, Conditions: &pb.GrpcRoute_Retry_Conditions{Unavailable: true}}, nil))
	conn := greeterConn(t, out)
	for i := range 6 {
		if err := hello(conn); err != nil {
			t.Fatalf("call %d through the retrying route: %v", i, err)
		}
	}
	if n := calls.Load(); n != 12 {
		t.Errorf("the backend got %d calls for 6, want 12 (each failure retried once)", n)
	}
	op.Set(svc, grpcPolicy(nil, nil))
	eventually.True(t, "the route without retries to show the failures", func() bool { return status.Code(hello(conn)) == codes.Unavailable })
}

// TestGRPCTrailersOnlyFailuresAccrue: under consecutive-failure accrual, an endpoint
// answering every call with a trailers-only UNAVAILABLE is taken out of balancing
// after its second failure: once a healthy endpoint joins it, every call succeeds.
func TestGRPCTrailersOnlyFailuresAccrue(t *testing.T) {
	d, op, out := policyProxy(t)
	bad, badCalls := greeter(t, func(int64) bool { return true })
	good, _ := greeter(t, func(int64) bool { return false })
	d.Set(svcV2, scriptedcp.Endpoint{Addr: bad})
	op.Set(svc, grpcPolicy(nil, &pb.FailureAccrual{Kind: &pb.FailureAccrual_ConsecutiveFailures_{
		ConsecutiveFailures: &pb.FailureAccrual_ConsecutiveFailures{MaxFailures: 2, Backoff: &pb.ExponentialBackoff{
			MinBackoff: durationpb.New(time.Hour), MaxBackoff: durationpb.New(time.Hour)}}}}))
	conn := greeterConn(t, out)
	eventually.True(t, "the failing endpoint to fail twice", func() bool {
		return status.Code(hello(conn)) == codes.Unavailable && badCalls.Load() >= 2
	})
	d.Set(svcV2, scriptedcp.Endpoint{Addr: bad}, scriptedcp.Endpoint{Addr: good})
	eventually.True(t, "the healthy endpoint to answer", func() bool { return hello(conn) == nil })
	before := badCalls.Load()
	for i := range 40 {
		if err := hello(conn); err != nil {
			t.Fatalf("call %d: %v, want every call on the healthy endpoint", i, err)
		}
	}
	if n := badCalls.Load() - before; n != 0 {
		t.Fatalf("the failing endpoint got %d more calls during its penalty", n)
	}
}
