package forward

import (
	"golang.org/x/net/http2/hpack"

	"github.com/l5d-go/l5d/proxy/h1"
	"github.com/l5d-go/l5d/proxy/h2"
)

// relayFields writes resp, the response to a request forwardH2 sent, to the client as
// HTTP/1.1 straight from its decoded fields: the head relayResponse would write from
// RoundTripHead's header map (the same fields under the same canonical names, values of
// a name in order, the same framing), without the map (see TestLeanOutboundEqualsGeneral).
// It reports whether the response body broke off, leaving the client a truncated
// response.
func (s *fastConn) relayFields(resp *h2.Response, head, clientClose bool) (broken bool) {
	w := s.cw
	writeStatusLine(w, resp.Status)
	for _, f := range resp.Fields {
		if hopField(f.Name) {
			continue
		}
		writeH2Field(w, f)
	}
	bodyless, chunked := writeRelayFraming(w, resp.Status, resp.ContentLength, hasNonEmpty(resp.Fields, "content-length"), head, clientClose)
	if bodyless {
		return false
	}
	if relayBody(w, resp, chunked) {
		return true
	}
	if chunked {
		for _, f := range resp.Trailers() {
			writeH2Field(w, f)
		}
		w.WriteString("\r\n")
	}
	return false
}

// hasNonEmpty reports whether the first field named name in fields has a value: what
// http.Header.Get tells of the header map made from fields.
func hasNonEmpty(fields []hpack.HeaderField, name string) bool {
	for _, f := range fields {
		if f.Name == name {
			return f.Value != ""
		}
	}
	return false
}

// writeH2Field writes f, an HTTP/2 field (lower-case name), as an HTTP/1.1 field line
// under the canonical name net/http would give it.
func writeH2Field(w *h1.Writer, f hpack.HeaderField) {
	w.WriteFieldName(f.Name)
	w.WriteString(": ")
	w.WriteString(f.Value)
	w.WriteString("\r\n")
}

// hopField is isHopHeader for a lower-case HTTP/2 field name.
func hopField(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "l5d-orig-proto":
		return true
	}
	return false
}

// fieldsGRPCStatus is grpcStatus for a response held as fields: the first grpc-status of
// its trailers, else of its head, "" when neither has one.
func fieldsGRPCStatus(resp *h2.Response) string {
	for _, f := range resp.Trailers() {
		if f.Name == "grpc-status" {
			return f.Value
		}
	}
	for _, f := range resp.Fields {
		if f.Name == "grpc-status" {
			return f.Value
		}
	}
	return ""
}
