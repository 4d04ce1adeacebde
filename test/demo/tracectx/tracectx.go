// Package tracectx carries distributed-trace context through the demo's services, as an
// application must for Linkerd's proxies' spans of one request to join one trace: the
// trace headers a request arrives with (W3C traceparent and tracestate, B3) are kept in
// its context (Middleware) and sent on with every gRPC call made in that context
// (UnaryClientInterceptor). The services create no spans of their own; the proxies do.
// NewTraceparent starts a trace, for the traffic generator.
package tracectx

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Headers are the trace headers carried on, lower-case as gRPC metadata keys.
var Headers = []string{"traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3"}

type ctxKey struct{}

// Middleware keeps the trace headers of each request in its context.
func Middleware(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var kv []string
		for _, name := range Headers {
			if v := r.Header.Get(name); v != "" {
				kv = append(kv, name, v)
			}
		}
		if kv != nil {
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, kv))
		}
		h.ServeHTTP(w, r)
	})
}

// FromContext returns the trace headers kept in ctx as name, value pairs.
func FromContext(ctx context.Context) []string {
	kv, _ := ctx.Value(ctxKey{}).([]string)
	return kv
}

// UnaryClientInterceptor adds the trace headers kept in a call's context to its metadata.
func UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if kv := FromContext(ctx); kv != nil {
			ctx = metadata.AppendToOutgoingContext(ctx, kv...)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// NewTraceparent returns a W3C traceparent starting a new trace (random trace and parent
// ids), sampled or not.
func NewTraceparent(sampled bool) string {
	var b [24]byte
	for i := 0; i < len(b); i += 8 {
		v := rand.Uint64() | 1 // never all zeros
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	flags := "00"
	if sampled {
		flags = "01"
	}
	return strings.Join([]string{"00", hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:]), flags}, "-")
}
