package trace

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// receiver is an OTLP trace service built from the generated code, which the exporter's
// hand-encoded envelopes must satisfy.
type receiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	requests []*coltracepb.ExportTraceServiceRequest
	reject   int64
}

func (r *receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req)
	resp := &coltracepb.ExportTraceServiceResponse{}
	if r.reject > 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: r.reject, ErrorMessage: "too old"}
	}
	return resp, nil
}

// TestExporterBatchesAndCounts sends spans through the exporter to a generated OTLP
// server: they arrive in batches with the resource, and spans the collector rejects are
// counted as dropped.
func TestExporterBatchesAndCounts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &receiver{reject: 1}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, rcv)
	go srv.Serve(ln)
	defer srv.Stop()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var exported, dropped atomic.Uint64
	exp := NewExporter(ExporterOptions{Conn: cc, Resource: map[string]string{"service.name": "linkerd-proxy"},
		Batch: 3, Flush: 10 * time.Millisecond, Exported: &exported, Dropped: &dropped})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Queued before Run starts, so the first batch is full whatever the scheduling.
	for i := range 4 {
		exp.Send(&Span{TraceID: TraceID{1}, ID: SpanID{byte(i + 1)}, Name: "/", Start: time.Now(), End: time.Now()})
	}
	go exp.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for exported.Load()+dropped.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("exported %d dropped %d of 4", exported.Load(), dropped.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.requests) != 2 {
		t.Fatalf("%d Export calls, want a batch of 3 and one of 1", len(rcv.requests))
	}
	if n := len(rcv.requests[0].ResourceSpans[0].ScopeSpans[0].Spans); n != 3 {
		t.Errorf("first batch has %d spans, want 3", n)
	}
	if got := rcv.requests[0].ResourceSpans[0].Resource.Attributes[0].GetValue().GetStringValue(); got != "linkerd-proxy" {
		t.Errorf("resource service.name %q", got)
	}
	if exported.Load() != 2 || dropped.Load() != 2 {
		t.Errorf("exported %d dropped %d, want 2 and 2 (one rejected per call)", exported.Load(), dropped.Load())
	}
}
