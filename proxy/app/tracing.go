package app

import (
	"fmt"
	"log/slog"

	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/trace"
)

// startTracing connects c to the trace collector cfg names, if any: OTLP over gRPC with
// mutual TLS verified against the collector's identity (LINKERD2_PROXY_TRACE_COLLECTOR_SVC_NAME,
// required with identity), plaintext without identity. Spans exported and dropped are
// counted in trace_spans_exported_total and trace_spans_dropped_total.
func startTracing(cfg *config.Config, c *control, reg *metrics.Registry, log *slog.Logger) error {
	tc := cfg.Trace
	if tc.CollectorAddr == "" {
		return nil
	}
	var err error
	switch {
	case c.id != nil && tc.CollectorName == "":
		return fmt.Errorf("%s must be set when identity is enabled and %s is set", config.EnvTraceCollectorName, config.EnvTraceCollectorAddr)
	case c.id != nil:
		c.traceConn, err = dialControl(tc.CollectorAddr, tc.CollectorName, c.id.Roots(), c.id.Certificate)
	default:
		c.traceConn, err = dialControl(tc.CollectorAddr, "", nil, nil)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", config.EnvTraceCollectorAddr, err)
	}
	c.conns = append(c.conns, c.traceConn)
	resource, err := trace.Resource(tc.ServiceName, tc.AttributesPath, tc.ExtraAttributes, config.ParseAttributes)
	if err != nil {
		// As Linkerd's proxy: spans still go out, without the file's attributes.
		log.Warn("trace attributes not read; spans carry the service name and extra attributes only", "error", err)
		resource, _ = trace.Resource(tc.ServiceName, "", tc.ExtraAttributes, nil)
	}
	c.exporter = trace.NewExporter(trace.ExporterOptions{
		Conn:     c.traceConn,
		Resource: resource,
		Exported: reg.Counter("trace_spans_exported_total", "Spans the trace collector accepted", ""),
		Dropped: reg.Counter("trace_spans_dropped_total",
			"Spans lost because the export queue was full or the trace collector did not take them", ""),
		Log: log,
	})
	return nil
}

// tracer returns the tracer of direction, nil when tracing is off.
func (c *control) tracer(direction string) *trace.Tracer {
	if c.exporter == nil {
		return nil
	}
	return trace.NewTracer(c.exporter, direction)
}
