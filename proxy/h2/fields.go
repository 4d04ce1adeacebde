package h2

import (
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http2/hpack"
)

// FieldsHandler is a Handler that may serve a request from its header fields as they were
// decoded, without the header map ServeHTTP's request carries: a proxy relaying the
// request in another form saves building it (see the README of proxy: the inbound
// proxy's lean sender).
type FieldsHandler interface {
	http.Handler
	// ServeFields is called first for every well-formed request, on the stream's
	// goroutine, with r's Header nil and fields the request's regular header fields in the
	// order received (lower-case names, validated, connection-specific ones refused; the
	// slice is the stream's and valid until the handler returns). It returns false, having
	// written nothing and kept neither r nor fields, for ServeHTTP to serve the request
	// with its Header; a handler that decides late that it needs the map sets
	// r.Header = RequestHeader(fields) itself.
	ServeFields(w http.ResponseWriter, r *http.Request, fields []hpack.HeaderField) bool
}

// RequestHeader is the header map of a request whose regular fields are fields, as
// ServeHTTP's request has it: canonical names, the values of a repeated name in order,
// several cookie fields joined into one with "; " (RFC 9113 section 8.2.3), and the
// declared trailers in Request.Trailer rather than a Trailer field.
func RequestHeader(fields []hpack.HeaderField) http.Header {
	return requestHeader(fields, nil)
}

// requestHeader is RequestHeader with the values' slots in buf when they fit (see
// fieldsHeader).
func requestHeader(fields []hpack.HeaderField, buf []string) http.Header {
	h := fieldsHeader(fields, buf)
	delete(h, "Trailer")
	if c := h["Cookie"]; len(c) > 1 {
		h["Cookie"] = []string{strings.Join(c, "; ")}
	}
	return h
}

// HeadWriter is implemented by the server's ResponseWriter: it sends a response head held
// in another form than a header map.
type HeadWriter interface {
	// WriteHead sends the response head now, before anything else was written: status and
	// the fields of fields, then body, the start of the response body, ending the stream
	// when end is set. The rest of the body goes through Write and Flush, trailers
	// through Header with http.TrailerPrefix, as for any response. A stream the client
	// reset returns an error.
	WriteHead(status int, fields FieldSource, body []byte, end bool) error
}

// FieldSource gives the fields of a header block: EncodeFields passes each to enc, with a
// lower-case name and never a connection-specific or pseudo-header field. It is called
// once, under the connection's writer lock; the HPACK encoder may keep the strings, which
// must never change.
type FieldSource interface {
	EncodeFields(enc func(name, value string))
}

// WriteHead implements HeadWriter.
func (rw *responseWriter) WriteHead(status int, fields FieldSource, body []byte, end bool) error {
	if rw.err != nil {
		return rw.err
	}
	st := rw.st
	w := st.sc.w
	w.lock()
	defer w.unlock()
	if st.send.reset {
		rw.err = errStreamReset
		return rw.err
	}
	rw.status, rw.headersSent = status, true
	w.headers(st.id, end && len(body) == 0, func(enc func(string, string)) {
		enc(":status", statusString(status))
		fields.EncodeFields(enc)
	})
	if w.err == nil && len(body) > 0 {
		if err := w.data(st.id, &st.send, body, end); err != nil {
			rw.err = err
			return err
		}
	}
	if rw.err = w.err; rw.err == nil && end {
		rw.ended = true
		st.sc.responded(st)
	}
	return rw.err
}

// statusString is strconv.Itoa(code) without allocating for the common statuses.
func statusString(code int) string {
	switch code {
	case 200:
		return "200"
	case 201:
		return "201"
	case 204:
		return "204"
	case 206:
		return "206"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 400:
		return "400"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 429:
		return "429"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}
