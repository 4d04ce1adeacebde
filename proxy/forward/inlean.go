package forward

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"

	"github.com/l5d-go/l5d/proxy/h1"
	"github.com/l5d-go/l5d/proxy/h2"
	"github.com/l5d-go/l5d/proxy/internal/relaybuf"
	"github.com/l5d-go/l5d/proxy/trace"
)

// ServeFields implements h2.FieldsHandler: the inbound side's lean sender. A meshed
// HTTP/1 request (l5d-orig-proto) arriving as an HTTP/2 stream, without a body or with one
// of declared length, is routed and authorized as ServeHTTP would, then its decoded
// fields are written as an HTTP/1.1 head straight to a pooled connection to the
// application, and the application's response head, read in place, is encoded as
// HTTP/2 fields: no header map either way. What the application and the client see is
// what ServeHTTP would give them (see TestLeanInboundEqualsGeneral). Every other
// request, and every request while tap, the access log or a sampled trace needs the
// general handler, returns false before anything is done.
func (h *Handler) ServeFields(w http.ResponseWriter, r *http.Request, fields []hpack.HeaderField) bool {
	ci := ConnInfoFrom(r.Context())
	hw, ok := w.(h2.HeadWriter)
	if !ok || !h.leanInbound(r, ci, fields) {
		return false
	}
	h.serveLean(w, hw, r, ci, fields)
	return true
}

// leanInbound reports whether the request r with fields, arriving on ci, takes the lean
// sender (see ServeFields).
func (h *Handler) leanInbound(r *http.Request, ci *ConnInfo, fields []hpack.HeaderField) bool {
	if !ci.inbound() || ci.Gateway || h.AccessLog != nil || h.Tap.Active() {
		return false
	}
	if r.Trailer != nil || r.Method == http.MethodConnect || r.Body != http.NoBody && r.ContentLength < 0 {
		return false // chunked to the application: the general handler's
	}
	if hr, ok := h.Router.(HeaderRouter); ok && hr.RoutesOnHeaders(ci) {
		return false // routes on header fields: matched on the header map
	}
	restored, contentType := false, false
	for _, f := range fields {
		switch f.Name {
		case "l5d-orig-proto":
			restored = true
		case "content-type":
			// gRPC requests get gRPC errors (isGRPC reads the first value).
			if !contentType && strings.HasPrefix(f.Value, "application/grpc") {
				return false
			}
			contentType = true
		}
		if h.Trace.Enabled() && trace.SampledField([]byte(f.Name), []byte(f.Value)) {
			return false
		}
	}
	return restored
}

// serveLean serves r on the lean sender (see ServeFields); r's Header is nil.
func (h *Handler) serveLean(w http.ResponseWriter, hw h2.HeadWriter, r *http.Request, ci *ConnInfo, fields []hpack.HeaderField) {
	start := time.Now()
	be, err := h.Router.Route(r, ci)
	if err != nil {
		h.fail(w, r, h.errorMetrics(ci), start, err)
		return
	}
	if be.Policy != nil || be.Routes != nil {
		// A route policy or profile: the general handler serves the request as routed.
		r.Header = h2.RequestHeader(fields)
		ci.setClientID(r.Header)
		h.serveRouted(w, r, nil, ci, be, start)
		return
	}
	bep, err := be.Balancer.Pick(r.Context())
	if err != nil {
		h.fail(w, r, h.errorMetrics(ci), start, err)
		return
	}
	ep := bep.Value
	if ep.H2 || ep.AuthorityOverride != "" {
		r.Header = h2.RequestHeader(fields)
		ci.setClientID(r.Header)
		h.servePicked(w, r, nil, be, bep, nil, policyMetrics{}, start)
		return
	}
	m := ep.metricsFor(r)
	m.Request()
	bep.Start()
	uc, err := h.sendFields(r, ci, ep, fields)
	now := time.Now()
	h.attemptEnded(be, bep, start, now, err)
	if err != nil {
		h.fail(w, r, m, start, err)
		return
	}
	bep.Recovered()
	status, failure, aborted := h.relayHead(hw, w, uc, ep, r.Method == http.MethodHead)
	m.Response(status, failure || aborted, time.Since(start))
	if aborted {
		// Abort the client's stream so that it sees the failure rather than a short body.
		panic(http.ErrAbortHandler)
	}
}

// sendFields sends r, whose fields are fields, to ep as roundTripLean sends a request:
// the same checks, head and body (see writeFieldsHead). It returns the connection with
// the final response head read (see sendLean).
func (h *Handler) sendFields(r *http.Request, ci *ConnInfo, ep *Endpoint, fields []hpack.HeaderField) (*upstreamConn, error) {
	if !validMethod(r.Method) {
		return nil, errInvalidMethod
	}
	host := r.Host
	if host == "" {
		host = ep.hostPort
	}
	if !httpguts.ValidHostHeader(host) {
		return nil, errInvalidAuthority
	}
	target := r.RequestURI
	if !h2.PlainPath(target) {
		target = r.URL.RequestURI()
	}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength > 0
	lr := leanRequest{body: r.Body, length: r.ContentLength, hasBody: hasBody}
	return h.sendLean(r.Context(), ep, &lr, false, func(w *h1.Writer) {
		writeFieldsHead(w, r.Method, target, host, fields, ci.ClientID, hasBody, r.ContentLength)
	})
}

// writeFieldsHead writes the HTTP/1.1 head of a request restored from HTTP/2, as
// writeLeanRequest writes it from the header map the general handler would have: the
// fields with canonical names, in order, several cookie fields joined into one (RFC 9113
// section 8.2.3), without Host (host is the authority), Content-Length (set from the
// body's length: length when hasBody, 0 for a method that normally has a body, none
// otherwise), l5d-orig-proto and the fields the inbound side owns (the client's
// l5d-client-id and l5d-dst-override); l5d-client-id names clientID, the verified mesh
// identity of the client, when there is one.
func writeFieldsHead(w *h1.Writer, method, target, host string, fields []hpack.HeaderField, clientID string, hasBody bool, length int64) {
	w.WriteString(method)
	w.WriteString(" ")
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	cookies, te := false, false
	for i, f := range fields {
		switch f.Name {
		case "host", "content-length", "trailer", "l5d-orig-proto", "l5d-client-id", "l5d-dst-override":
			continue
		case "te": // "trailers", the one value the h2 server accepts: written once, as the general handler does
			if te {
				continue
			}
			te = true
		case "cookie":
			if cookies {
				continue
			}
			cookies = true
			w.WriteString("Cookie: ")
			w.WriteString(f.Value)
			for _, g := range fields[i+1:] {
				if g.Name == "cookie" {
					w.WriteString("; ")
					w.WriteString(g.Value)
				}
			}
			w.WriteString("\r\n")
			continue
		}
		w.WriteFieldName(f.Name)
		w.WriteString(": ")
		w.WriteString(f.Value)
		w.WriteString("\r\n")
	}
	if clientID != "" {
		w.WriteString("L5d-Client-Id: ")
		w.WriteString(clientID)
		w.WriteString("\r\n")
	}
	switch {
	case hasBody:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(length, 10))
		w.WriteString("\r\n")
	case method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	w.WriteString("\r\n")
}

// relayHead relays the response whose head uc.head holds (see sendLean), to a request
// with the HEAD method when head, to the client as the general handler does
// (copyResponse): the end-to-end fields as HTTP/2 carries them, Content-Length when the
// response declares none and its length is known, the body from pooled buffers (streamed,
// each read flushed, when its length is unknown), the trailers of a chunked body. The
// connection goes back to ep's pool once the body has been read through. It returns the
// status, whether the response is a failure for metrics (a 5xx or a gRPC status other
// than 0) and whether it broke off (the client must see its stream reset).
func (h *Handler) relayHead(hw h2.HeadWriter, w http.ResponseWriter, uc *upstreamConn, ep *Endpoint, head bool) (status int, failure, aborted bool) {
	rh := &uc.head
	status = rh.Status
	bodyless := head || rh.Bodyless(nil)
	rf := h2HeadPool.Get().(*h2Head)
	defer func() { rf.release(); h2HeadPool.Put(rf) }()
	length, grpcFailure := rf.set(rh, head)
	failure = status >= 500 || grpcFailure
	fields := rf
	reusable := !rh.Close
	// done gives the connection back (or closes it) once the response has been read
	// from it whole: before the response's last frame goes to the client, so that the
	// client's next request finds it in the pool.
	released := false
	done := func() {
		released = true
		if reusable && len(uc.r.Buffered()) == 0 {
			ep.pool.put(h.Clients, uc, time.Now())
		} else {
			uc.conn.Close()
		}
	}
	var err error
	switch {
	case bodyless || length == 0:
		uc.r.Consume(rh)
		done()
		err = hw.WriteHead(status, fields, nil, true)
	case length > 0:
		uc.r.Consume(rh)
		// The body's first 16 KiB (often all of it) leave with the head, once read: a
		// body broken off before then resets the stream before any of the response, as
		// the general handler's buffered response does.
		bp := bufPool.Get().(*[]byte)
		first := (*bp)[:min(int64(len(*bp)), length)]
		if err = uc.r.ReadFull(first); err == nil {
			whole := int64(len(first)) == length
			if whole {
				done()
			}
			err = hw.WriteHead(status, fields, first, whole)
		}
		bufPool.Put(bp)
		if left := length - int64(len(first)); err == nil && left > 0 {
			err = copyFixedTo(w, uc.r, left)
		}
	default: // chunked, or until the application closes the connection
		uc.r.Consume(rh)
		if err = hw.WriteHead(status, fields, nil, false); err == nil {
			var t trailerSink
			if rh.Chunked {
				t.w = w
				err = copyStreamTo(w, &h1.ChunkedBody{R: uc.r, Trailer: t.add}, flusherOf(w))
				failure = failure || t.grpcFailure
			} else {
				reusable = false
				err = copyStreamTo(w, uc.r, flusherOf(w))
				if errors.Is(err, io.EOF) {
					err = nil
				}
			}
		}
	}
	if err != nil {
		if !released {
			uc.conn.Close()
		}
		if h.Log != nil {
			h.Log.Debug("response body interrupted", "error", err)
		}
		return status, true, true
	}
	if !released {
		done()
	}
	return status, failure, false
}

// h2Head is the head of a response from an HTTP/1 endpoint as relayed over HTTP/2 (see
// relayHead): an h2.FieldSource, from h2HeadPool. It holds copies of what it relays, not
// references to the connection's head, so that the connection can go back to its pool
// before the response's last frame is written.
type h2Head struct {
	// all holds the relayed fields (see lowerFields); lens[i] are the lengths of the
	// name and value of the i-th of them, n their number.
	all  string
	lens [h1.MaxFields][2]uint32
	n    int
	// length is the content-length added to a response that declares none, or "".
	length string
}

var h2HeadPool = sync.Pool{New: func() any { return new(h2Head) }}

// set makes f the head rh (of a response to a HEAD request when head) as the general
// handler relays it (copyResponse, then the HTTP/2 server's encoding of its header
// map): the end-to-end fields but Host, and a content-length when the response declares
// none and its length is known. It returns that length as the general handler's response
// has it (-1: unknown) and whether the first grpc-status field names a failure.
func (f *h2Head) set(rh *h1.Head, head bool) (length int64, grpcFailure bool) {
	length = rh.ContentLength
	switch {
	case head || rh.Bodyless(nil):
		length = bodylessLength(rh, head)
	case rh.Chunked:
		length = -1
	}
	var keepAll [h1.MaxFields]bool
	keep := keepAll[:len(rh.Fields)]
	declared, grpc := false, false // a Content-Length field is relayed; a grpc-status was seen
	for i, fl := range rh.Fields {
		keep[i] = !rh.IsHopByHop(fl.Name) && !h1.EqualFold(fl.Name, "host")
		if !keep[i] {
			continue
		}
		switch {
		case h1.EqualFold(fl.Name, "content-length"):
			declared = true
		case !grpc && h1.EqualFold(fl.Name, "grpc-status"):
			grpc = true
			grpcFailure = len(fl.Value) > 0 && string(fl.Value) != "0"
		}
	}
	f.all, f.length, f.n = lowerFields(rh, keep), "", 0
	for i, fl := range rh.Fields {
		if keep[i] {
			f.lens[f.n] = [2]uint32{uint32(len(fl.Name)), uint32(len(fl.Value))}
			f.n++
		}
	}
	if length >= 0 && !declared && rh.Status != http.StatusNoContent && rh.Status != http.StatusNotModified {
		f.length = itoa(length)
	}
	return length, grpcFailure
}

// EncodeFields implements h2.FieldSource.
func (f *h2Head) EncodeFields(enc func(name, value string)) {
	off := 0
	for _, l := range f.lens[:f.n] {
		name := f.all[off : off+int(l[0])]
		off += int(l[0])
		enc(name, f.all[off:off+int(l[1])])
		off += int(l[1])
	}
	if f.length != "" {
		enc("content-length", f.length)
	}
}

// release drops the references to the response once relayed.
func (f *h2Head) release() { f.all, f.length, f.n = "", "", 0 }

// copyFixedTo relays the n bytes of body left in r to w through a pooled buffer.
func copyFixedTo(w io.Writer, r *h1.Reader, n int64) error {
	var lease relaybuf.Lease
	defer lease.Release()
	for n > 0 {
		buf := lease.Bytes()
		k, err := r.Read(buf[:min(int64(len(buf)), n)])
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return werr
			}
			n -= int64(k)
		}
		lease.Read(k)
		if err != nil && n > 0 {
			return h1.ErrBodyTruncated
		}
	}
	return nil
}

// copyStreamTo relays body to w through a pooled buffer, flushing after each write when
// flusher is not nil (a body of unknown length may be a stream), until body's io.EOF,
// which it returns as nil, or another error (of the read or the write).
func copyStreamTo(w io.Writer, body io.Reader, flusher http.Flusher) error {
	var lease relaybuf.Lease
	defer lease.Release()
	for {
		buf := lease.Bytes()
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		lease.Read(n)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// flusherOf returns w's http.Flusher, nil when it has none.
func flusherOf(w http.ResponseWriter) http.Flusher {
	f, _ := w.(http.Flusher)
	return f
}

// trailerSink takes the trailer fields of a chunked response into w's trailers, as the
// general handler relays them, and notes a gRPC status other than 0.
type trailerSink struct {
	w           http.ResponseWriter
	grpcFailure bool
}

func (t *trailerSink) add(name, value []byte) {
	k := canonicalName(name)
	if k == "Grpc-Status" && len(value) > 0 && string(value) != "0" {
		t.grpcFailure = true
	}
	h := t.w.Header()
	h[http.TrailerPrefix+k] = append(h[http.TrailerPrefix+k], string(value))
}

// lowerFields copies the names, lower-cased as HTTP/2 carries them, and the values of
// the fields of head that keep selects into one string, name then value for each, in
// order (see encodeLowerFields): the HPACK encoder may keep the strings it is given, which
// therefore must not point into the read buffer.
func lowerFields(head *h1.Head, keep []bool) string {
	size := 0
	for i, f := range head.Fields {
		if keep[i] {
			size += len(f.Name) + len(f.Value)
		}
	}
	b := appendLowerFields(make([]byte, 0, size), head, keep)
	return unsafe.String(unsafe.SliceData(b), len(b)) // b is not used again
}

// appendLowerFields appends to dst what lowerFields copies.
func appendLowerFields(dst []byte, head *h1.Head, keep []bool) []byte {
	for i, f := range head.Fields {
		if !keep[i] {
			continue
		}
		for _, c := range f.Name {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		}
		dst = append(dst, f.Value...)
	}
	return dst
}

// encodeLowerFields passes enc each field lowerFields copied into all from head.
func encodeLowerFields(all string, head *h1.Head, keep []bool, enc func(name, value string)) {
	off := 0
	for i, f := range head.Fields {
		if !keep[i] {
			continue
		}
		name := all[off : off+len(f.Name)]
		off += len(f.Name)
		enc(name, all[off:off+len(f.Value)])
		off += len(f.Value)
	}
}

var _ h2.FieldsHandler = (*Handler)(nil)
