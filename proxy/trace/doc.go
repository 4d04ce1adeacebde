// Package trace gives the proxy Linkerd's distributed tracing: a request that arrives
// with sampled trace context (W3C traceparent, or B3 in its multi-header or single-header
// form) gets a span of its own, whose id replaces the caller's in the request's headers so
// that the next hop records it as parent; the span, named after the request's path with
// Linkerd's attributes, is exported with OTLP over gRPC to the collector by an Exporter
// that batches spans off the request path and drops (and counts) them when its bounded
// queue is full or the collector does not take them.
//
// Requests without context, or whose context is not sampled, are left untouched and cost
// no allocation; a nil *Tracer (tracing off) costs a nil check.
package trace
