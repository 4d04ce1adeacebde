package rpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// testService is a hand-written gRPC service (test.Probe) whose methods panic, succeed, or
// block until released, to exercise the interceptors and shutdown.
type testService struct {
	srv     *Server
	entered chan struct{} // receives once per call to Block
	release chan struct{} // closed to let Block return
}

func (t *testService) desc() *grpc.ServiceDesc {
	unary := func(name string, fn func(ctx context.Context) error) grpc.MethodHandler {
		return func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, _ any) (any, error) { return new(emptypb.Empty), fn(ctx) }
			if ic == nil {
				return h(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: "/test.Probe/" + name}, h)
		}
	}
	return &grpc.ServiceDesc{
		ServiceName: "test.Probe",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Ok", Handler: unary("Ok", func(context.Context) error { return nil })},
			{MethodName: "Panic", Handler: unary("Panic", func(context.Context) error { panic("boom") })},
			{MethodName: "Block", Handler: unary("Block", func(ctx context.Context) error {
				t.entered <- struct{}{}
				select {
				case <-t.release:
					return nil
				case <-ctx.Done():
					return status.FromContextError(ctx.Err()).Err()
				}
			})},
		},
		Streams: []grpc.StreamDesc{{
			StreamName:    "PanicStream",
			ServerStreams: true,
			Handler:       func(any, grpc.ServerStream) error { panic("stream boom") },
		}, {
			// Follow is a watch that ends when the server begins to stop.
			StreamName:    "Follow",
			ServerStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				if err := ss.SendMsg(new(emptypb.Empty)); err != nil {
					return err
				}
				<-t.srv.Stopping()
				return nil
			},
		}},
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	srv    *Server
	svc    *testService
	reg    *prometheus.Registry
	logs   *syncBuffer
	conn   *grpc.ClientConn
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, opts ServerOptions) *harness {
	t.Helper()
	h := &harness{
		svc:  &testService{entered: make(chan struct{}, 16), release: make(chan struct{})},
		reg:  prometheus.NewRegistry(),
		logs: &syncBuffer{},
		done: make(chan error, 1),
	}
	opts.Registerer = h.reg
	opts.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.svc.srv = srv
	srv.GRPC.RegisterService(h.svc.desc(), h.svc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- srv.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(time.Minute):
			t.Error("server did not stop")
		}
	})
	h.conn, err = NewClient(ln.Addr().String(), ClientOptions{Registerer: prometheus.NewRegistry(), Logger: opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.conn.Close() })
	return h
}

func (h *harness) call(ctx context.Context, method string) error {
	return h.conn.Invoke(ctx, "/test.Probe/"+method, new(emptypb.Empty), new(emptypb.Empty))
}

func (h *harness) waitStopped(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // let Cleanup see it too
		return err
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return")
		return nil
	}
}

func TestPanicBecomesInternalAndIsLogged(t *testing.T) {
	h := startServer(t, ServerOptions{})
	ctx := context.Background()

	err := h.call(ctx, "Panic")
	if status.Code(err) != codes.Internal {
		t.Fatalf("unary panic: got %v, want codes.Internal", err)
	}
	if strings.Contains(err.Error(), "boom") {
		t.Errorf("panic value leaked to the caller: %v", err)
	}
	stream, err := h.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/test.Probe/PanicStream")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(new(emptypb.Empty)); err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	if err := stream.RecvMsg(new(emptypb.Empty)); status.Code(err) != codes.Internal {
		t.Fatalf("stream panic: got %v, want codes.Internal", err)
	}

	// The server keeps serving after a panic.
	if err := h.call(ctx, "Ok"); err != nil {
		t.Fatalf("call after panic: %v", err)
	}
	logs := h.logs.String()
	for _, want := range []string{"recovered from panic", "panic=boom", "grpc.method=/test.Probe/Panic", "stack="} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if got := metricValue(t, h.reg, "grpc_server_panics_recovered_total", nil); got != 2 {
		t.Errorf("grpc_server_panics_recovered_total = %v, want 2", got)
	}
}

// metricValue returns the value of the counter or gauge series name{labels} in reg, or -1
// when there is no such series.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func TestServerMetricsAndCallLogs(t *testing.T) {
	h := startServer(t, ServerOptions{})
	ctx := context.Background()
	for range 3 {
		if err := h.call(ctx, "Ok"); err != nil {
			t.Fatal(err)
		}
	}
	_ = h.call(ctx, "Panic")
	for _, tt := range []struct {
		code, method string
		want         float64
	}{{"OK", "Ok", 3}, {"Internal", "Panic", 1}, {"OK", "Panic", 0}} {
		got := metricValue(t, h.reg, "grpc_server_handled_total", map[string]string{
			"grpc_code": tt.code, "grpc_method": tt.method, "grpc_service": "test.Probe", "grpc_type": "unary"})
		if got != tt.want {
			t.Errorf("grpc_server_handled_total{grpc_code=%q,grpc_method=%q} = %v, want %v", tt.code, tt.method, got, tt.want)
		}
	}
	if n, err := testutil.GatherAndCount(h.reg, "grpc_server_handling_seconds"); err != nil || n == 0 {
		t.Errorf("grpc_server_handling_seconds histogram missing (%d series, %v)", n, err)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "level=DEBUG") || !strings.Contains(logs, "grpc.method=Ok") || !strings.Contains(logs, "grpc.code=OK") {
		t.Errorf("successful calls should be logged at debug with method and code:\n%s", logs)
	}
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "grpc.code=Internal") {
		t.Errorf("internal errors should be logged at error level:\n%s", logs)
	}
}

func TestHealthStatus(t *testing.T) {
	h := startServer(t, ServerOptions{})
	ctx := context.Background()
	client := healthgrpc.NewHealthClient(h.conn)

	check := func(service string) healthgrpc.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := client.Check(ctx, &healthgrpc.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("Check(%q): %v", service, err)
		}
		return resp.GetStatus()
	}
	if got := check(""); got != healthgrpc.HealthCheckResponse_SERVING {
		t.Errorf("overall status at start = %v, want SERVING", got)
	}
	h.srv.SetServing("", false)
	if got := check(""); got != healthgrpc.HealthCheckResponse_NOT_SERVING {
		t.Errorf("after SetServing(\"\", false) = %v, want NOT_SERVING", got)
	}
	h.srv.SetServing("io.linkerd.proxy.identity.Identity", true)
	if got := check("io.linkerd.proxy.identity.Identity"); got != healthgrpc.HealthCheckResponse_SERVING {
		t.Errorf("named service = %v, want SERVING", got)
	}
	if _, err := client.Check(ctx, &healthgrpc.HealthCheckRequest{Service: "unknown"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: %v, want NotFound", err)
	}

	// A watcher learns that the server is going away as soon as shutdown starts.
	h.srv.SetServing("", true)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch, err := client.Watch(watchCtx, &healthgrpc.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthgrpc.HealthCheckResponse_SERVING {
		t.Fatalf("first watch update %v, %v; want SERVING", resp, err)
	}
	h.cancel()
	resp, err := watch.Recv()
	if err != nil || resp.GetStatus() != healthgrpc.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch update on shutdown %v, %v; want NOT_SERVING", resp, err)
	}
	stopWatch() // a watcher told NOT_SERVING goes elsewhere, letting shutdown finish
	if err := h.waitStopped(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestGracefulStopLetsInFlightCallsFinish(t *testing.T) {
	h := startServer(t, ServerOptions{ShutdownTimeout: time.Minute})
	callErr := make(chan error, 1)
	go func() { callErr <- h.call(context.Background(), "Block") }()
	<-h.svc.entered
	h.cancel()
	// New calls are refused once shutdown has begun; poll until that is visible.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := h.call(ctx, "Ok")
		cancel()
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server still accepts new calls after shutdown began")
		}
	}
	select {
	case err := <-h.done:
		t.Fatalf("Serve returned (%v) while a call was still in flight", err)
	default:
	}
	close(h.svc.release)
	if err := <-callErr; err != nil {
		t.Fatalf("in-flight call failed during graceful stop: %v", err)
	}
	if err := h.waitStopped(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestWatchStreamsEndWhenStopping(t *testing.T) {
	h := startServer(t, ServerOptions{ShutdownTimeout: 10 * time.Minute})
	stream, err := h.conn.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true}, "/test.Probe/Follow")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(new(emptypb.Empty)); err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	if err := stream.RecvMsg(new(emptypb.Empty)); err != nil {
		t.Fatalf("first message: %v", err)
	}
	h.cancel()
	// The handler returns on Stopping, so the stream ends cleanly and Serve returns without
	// waiting for the (ten-minute) shutdown timeout.
	if err := stream.RecvMsg(new(emptypb.Empty)); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v, want io.EOF", err)
	}
	if err := h.waitStopped(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if strings.Contains(h.logs.String(), "timed out") {
		t.Errorf("shutdown should not have timed out:\n%s", h.logs.String())
	}
}

func TestShutdownDeadlineClosesStuckCalls(t *testing.T) {
	h := startServer(t, ServerOptions{ShutdownTimeout: 50 * time.Millisecond})
	callErr := make(chan error, 1)
	go func() { callErr <- h.call(context.Background(), "Block") }()
	<-h.svc.entered
	h.cancel()
	if err := h.waitStopped(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := <-callErr; status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
		t.Fatalf("stuck call ended with %v, want Unavailable or Canceled after forced stop", err)
	}
	if !strings.Contains(h.logs.String(), "graceful shutdown timed out") {
		t.Errorf("forced stop not logged:\n%s", h.logs.String())
	}
}

func TestSIGTERMStopsServe(t *testing.T) {
	h := startServer(t, ServerOptions{})
	// A successful call proves ServeListener is running, so its signal handler is installed.
	if err := h.call(context.Background(), "Ok"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := h.waitStopped(t); err != nil {
		t.Fatalf("Serve after SIGTERM: %v", err)
	}
}

func TestServeReportsListenErrors(t *testing.T) {
	srv, err := NewServer(ServerOptions{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Serve(context.Background(), "256.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "256.0.0.1:1") {
		t.Fatalf("Serve on a bad address: %v, want an error naming it", err)
	}
}

func TestMetricsRegistrationIsShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	for i := range 2 {
		if _, err := NewServer(ServerOptions{Registerer: reg}); err != nil {
			t.Fatalf("server %d on one registry: %v", i, err)
		}
		if _, err := NewClient("127.0.0.1:1", ClientOptions{Registerer: reg}); err != nil {
			t.Fatalf("client %d on one registry: %v", i, err)
		}
	}
	// A different collector under the same name is a real conflict and is reported.
	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "grpc_server_panics_recovered_total", Help: "x"}))
	if _, err := NewServer(ServerOptions{Registerer: clash}); err == nil {
		t.Fatal("conflicting metric registration was not reported")
	}
}
