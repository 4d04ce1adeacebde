// Package forward is the proxy's HTTP layer: it takes a request accepted by the inbound or
// outbound server, asks a Router for its Backend, picks an endpoint with the backend's
// balancer, sends the request over a pooled HTTP/1 or HTTP/2 client connection and streams
// the response back, recording metrics.
//
// Between proxies, HTTP/1 requests travel as HTTP/2 when the endpoint is known to be a
// proxy (the h2 protocol hint); the header l5d-orig-proto tells the far side to restore
// HTTP/1 for the application. Failures the proxy itself produces are answered with 502,
// 503 or 504 and an l5d-proxy-error header saying why.
//
// Per request, the handler reuses the server's *http.Request as the outgoing request (no
// clone), copies the body through a pooled buffer, and records metrics on handles resolved
// before the request (see package metrics).
//
// A request leaves by one of three senders: the HTTP/1 fast path's inline relay
// (fast.go), roundTripLean (h1lean.go, every other HTTP/1 request, upgrades included) or
// the h2 transport; proxy/README.md ("Which request takes which path") draws which.
package forward
