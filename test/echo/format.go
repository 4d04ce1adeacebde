// Package echo is l5d's echo server and client, compatible with the image the Gateway API
// conformance suite's mesh tests deploy (registry.k8s.io/gateway-api/echo-advanced, Istio's
// echo application): the server answers HTTP/1.1, h2c, HTTPS, gRPC and TCP on the ports its
// flags name and describes each request in its response body, one Key=Value a line; the
// client, which the suite runs inside an echo pod (`client <url> [--method=M] [-H k:v]...
// [--count=N]`), sends requests and prints, per request, its status and response headers
// prefixed "[i] " and the body's lines prefixed "[i body] ", a blank line after each: the
// format the suite's parser (conformance/utils/echo) reads.
package echo

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// Fields of a response body, one "Key=Value" a line.
const (
	FieldServiceVersion = "ServiceVersion"
	FieldServicePort    = "ServicePort"
	FieldHost           = "Host"
	FieldURL            = "URL"
	FieldCluster        = "Cluster"
	FieldMethod         = "Method"
	FieldProto          = "Proto"
	FieldAlpn           = "Alpn"
	FieldIP             = "IP"
	FieldRequestHeader  = "RequestHeader"
	FieldHostname       = "Hostname"
	FieldStatusCode     = "StatusCode"
	FieldResponseHeader = "ResponseHeader"
	FieldURLOfRequest   = "Url"
)

// body accumulates the lines of a response body.
type body struct {
	strings.Builder
}

func (b *body) field(k, v string) {
	fmt.Fprintf(b, "%s=%s\n", k, v)
}

// headers writes one RequestHeader line per value of h, keys sorted.
func (b *body) headers(h http.Header) {
	for _, kv := range headerValues(h) {
		b.field(FieldRequestHeader, kv)
	}
}

// headerValues returns "Name:value" for each value of h, names sorted.
func headerValues(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		for _, v := range h[k] {
			out = append(out, k+":"+v)
		}
	}
	return out
}

// writeResult prints one request's result in the client's output format: status, response
// headers (keys sorted), then the body's lines, and a blank line.
func writeResult(w io.Writer, i int, url string, status int, respHeaders http.Header, respBody string) {
	fmt.Fprintf(w, "[%d] %s=%s\n", i, FieldURLOfRequest, url)
	fmt.Fprintf(w, "[%d] %s=%d\n", i, FieldStatusCode, status)
	for _, kv := range headerValues(respHeaders) {
		fmt.Fprintf(w, "[%d] %s=%s\n", i, FieldResponseHeader, kv)
	}
	for _, line := range strings.Split(strings.TrimRight(respBody, "\n"), "\n") {
		if line != "" {
			fmt.Fprintf(w, "[%d body] %s\n", i, line)
		}
	}
	fmt.Fprintln(w)
}
