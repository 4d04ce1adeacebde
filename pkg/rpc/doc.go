// Package rpc builds the gRPC servers and clients of the control plane with the mesh's
// conventions: go-grpc-middleware interceptors for Prometheus metrics, slog logging and
// panic recovery; keepalive enforcement; bounds on streams per connection and request
// size; the standard grpc.health.v1 service; and a Serve
// helper that stops gracefully on context cancellation or SIGTERM.
//
// Interceptors run outermost first: metrics, then logging, then recovery, so a handler
// panic is turned into codes.Internal before it is logged and counted.
package rpc
