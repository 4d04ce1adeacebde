package proxyconf

// Annotations of Linkerd's jaeger extension, on a namespace or a pod: the jaeger injector
// (not the proxy injector) reads them to point a pod's proxy at another trace collector.
const (
	// AnnTraceCollector is the collector's host:port.
	AnnTraceCollector = Prefix + "trace-collector"
	// AnnTraceCollectorServiceAccount is the collector's service account, whose mesh
	// identity the proxy verifies (in the collector address's namespace).
	AnnTraceCollectorServiceAccount = PrefixAlpha + "trace-collector-service-account"
	// AnnTracingEnabled marks a pod the jaeger injector has configured.
	AnnTracingEnabled = "jaeger.linkerd.io/tracing-enabled"
)

// TraceProtocolOpenTelemetry is the LINKERD2_PROXY_TRACE_PROTOCOL value of OTLP over
// gRPC, the only protocol this proxy exports.
const TraceProtocolOpenTelemetry = "opentelemetry"
