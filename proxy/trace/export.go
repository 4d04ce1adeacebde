package trace

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync/atomic"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Exporter defaults.
const (
	// DefaultQueue bounds the spans waiting for export; more are dropped.
	DefaultQueue = 1000
	// DefaultBatch is the most spans sent in one Export call.
	DefaultBatch = 256
	// DefaultFlush is how long a span waits for a fuller batch.
	DefaultFlush = time.Second
	// exportTimeout bounds one Export call.
	exportTimeout = 10 * time.Second
)

// ExporterOptions configure an Exporter.
type ExporterOptions struct {
	// Conn is the client connection to the OTLP collector (mutual TLS to its identity).
	Conn grpc.ClientConnInterface
	// Resource are the attributes of the proxy sending the spans (service.name, the pod's
	// labels...).
	Resource map[string]string
	// Queue, Batch and Flush override DefaultQueue, DefaultBatch and DefaultFlush when
	// positive.
	Queue, Batch int
	Flush        time.Duration
	// Exported and Dropped, when set, count spans the collector accepted and spans lost
	// (queue full, or an Export call that failed).
	Exported, Dropped *atomic.Uint64
	Log               *slog.Logger
}

// Exporter sends spans to an OTLP collector in batches from its own goroutine (Run); Send
// only queues.
type Exporter struct {
	conn     grpc.ClientConnInterface
	queue    chan *Span
	batch    int
	flush    time.Duration
	resource *resourcepb.Resource
	exported *atomic.Uint64
	dropped  *atomic.Uint64
	log      *slog.Logger
}

// NewExporter returns an exporter; call Run to start sending.
func NewExporter(o ExporterOptions) *Exporter {
	e := &Exporter{conn: o.Conn, batch: o.Batch, flush: o.Flush,
		exported: o.Exported, dropped: o.Dropped, log: o.Log}
	q := o.Queue
	if q <= 0 {
		q = DefaultQueue
	}
	e.queue = make(chan *Span, q)
	if e.batch <= 0 {
		e.batch = DefaultBatch
	}
	if e.flush <= 0 {
		e.flush = DefaultFlush
	}
	if e.exported == nil {
		e.exported = new(atomic.Uint64)
	}
	if e.dropped == nil {
		e.dropped = new(atomic.Uint64)
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	e.resource = &resourcepb.Resource{Attributes: keyValues(o.Resource)}
	return e
}

// Send queues s for export, or drops and counts it when the queue is full. It never
// blocks.
func (e *Exporter) Send(s *Span) {
	select {
	case e.queue <- s:
	default:
		e.dropped.Add(1)
	}
}

// Run exports queued spans until ctx ends: a batch leaves when it is full or its first
// span has waited Flush. A batch the collector does not take is dropped and counted.
func (e *Exporter) Run(ctx context.Context) {
	batch := make([]*Span, 0, e.batch)
	timer := time.NewTimer(e.flush)
	timer.Stop()
	send := func() {
		if len(batch) > 0 {
			e.export(ctx, batch)
			clear(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case s := <-e.queue:
			if len(batch) == 0 {
				timer.Reset(e.flush)
			}
			batch = append(batch, s)
			if len(batch) >= e.batch {
				timer.Stop()
				send()
			}
		case <-timer.C:
			send()
		}
	}
}

func (e *Exporter) export(ctx context.Context, spans []*Span) {
	rs := []*tracepb.ResourceSpans{{
		Resource:   e.resource,
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "linkerd-proxy"}, Spans: otlpSpans(spans)}},
	}}
	ctx, cancel := context.WithTimeout(ctx, exportTimeout)
	defer cancel()
	res, err := export(ctx, e.conn, rs)
	if err != nil {
		e.dropped.Add(uint64(len(spans)))
		e.log.Debug("trace collector did not take spans; dropped", "spans", len(spans), "error", err)
		return
	}
	rejected := uint64(0)
	if res.rejected > 0 {
		rejected = min(uint64(res.rejected), uint64(len(spans)))
		e.log.Debug("trace collector rejected spans", "spans", rejected, "message", res.message)
	}
	e.dropped.Add(rejected)
	e.exported.Add(uint64(len(spans)) - rejected)
}

// otlpSpans converts spans to OTLP.
func otlpSpans(spans []*Span) []*tracepb.Span {
	out := make([]*tracepb.Span, len(spans))
	for i, s := range spans {
		attrs := make([]*commonpb.KeyValue, len(s.Attributes))
		for j, a := range s.Attributes {
			attrs[j] = stringKV(a.Key, a.Value)
		}
		out[i] = &tracepb.Span{
			TraceId:           s.TraceID[:],
			SpanId:            s.ID[:],
			ParentSpanId:      s.Parent[:],
			Name:              s.Name,
			Kind:              tracepb.Span_SpanKind(s.Kind),
			StartTimeUnixNano: uint64(s.Start.UnixNano()),
			EndTimeUnixNano:   uint64(s.End.UnixNano()),
			Attributes:        attrs,
		}
	}
	return out
}

func stringKV(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// keyValues converts m, sorted by key.
func keyValues(m map[string]string) []*commonpb.KeyValue {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	kvs := make([]*commonpb.KeyValue, len(keys))
	for i, k := range keys {
		kvs[i] = stringKV(k, m[k])
	}
	return kvs
}

// Resource returns the resource attributes of a proxy's spans as Linkerd's proxy builds
// them: service.name, then the key="value" lines of the file at path (the pod's labels;
// unset path: none), then extra; later ones win. A file that cannot be read is an error.
func Resource(serviceName, path string, extra map[string]string, parse func(string) (map[string]string, error)) (map[string]string, error) {
	attrs := map[string]string{"service.name": serviceName}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("trace attributes: %w", err)
		}
		file, err := parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("trace attributes in %s: %w", path, err)
		}
		for k, v := range file {
			attrs[k] = v
		}
	}
	for k, v := range extra {
		attrs[k] = v
	}
	return attrs, nil
}
