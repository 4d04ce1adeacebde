package tracectx_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/l5d-go/l5d/test/demo/tracectx"
)

// TestContextReachesBackendCalls serves a front end that calls a real gRPC server: the
// trace headers of the front end's request arrive as the backend call's metadata, and a
// request without them sends none.
func TestContextReachesBackendCalls(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan metadata.MD, 1)
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		seen <- md
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	defer srv.Stop()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(tracectx.UnaryClientInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	backend := healthpb.NewHealthClient(cc)
	front := tracectx.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := backend.Check(r.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			http.Error(w, err.Error(), 500)
		}
	}))

	tp := tracectx.NewTraceparent(true)
	if !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`).MatchString(tp) {
		t.Fatalf("NewTraceparent = %q", tp)
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Traceparent", tp)
	req.Header.Set("X-B3-Sampled", "1")
	front.ServeHTTP(httptest.NewRecorder(), req)
	md := <-seen
	if got := md.Get("traceparent"); len(got) != 1 || got[0] != tp {
		t.Errorf("backend got traceparent %v, want %s", got, tp)
	}
	if got := md.Get("x-b3-sampled"); len(got) != 1 || got[0] != "1" {
		t.Errorf("backend got x-b3-sampled %v", got)
	}
	front.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if md := <-seen; len(md.Get("traceparent")) != 0 {
		t.Errorf("a request without context sent traceparent %v", md.Get("traceparent"))
	}
}
