package forward

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/l5d-go/l5d/proxy/h1"
	"github.com/l5d-go/l5d/proxy/internal/relaybuf"
)

// roundTripLean sends r to ep over a pooled HTTP/1.1 connection with the lean codec and
// returns the response with its header fields copied out of the read buffer; the body
// reads straight from the connection, which returns to the pool when the body has been
// read to its end. It replaces net/http's message writer and parser (and their per-field
// allocations) for every request of the general handler sent over HTTP/1 but upgrades:
// those arriving as HTTP/2 from another proxy, and those the fast path hands over. A body
// of unknown length, or one with declared trailers, is sent chunked (each chunk flushed as
// it comes, as net/http does), the trailers after it. With watch, ctx ending before the
// response headers arrive aborts the exchange (route timeouts).
func (h *Handler) roundTripLean(ctx context.Context, ep *Endpoint, r *http.Request, watch bool) (*http.Response, error) {
	if !validMethod(r.Method) {
		return nil, errInvalidMethod
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return nil, errInvalidAuthority
	}
	target := r.URL.RequestURI()
	upgrade := upgradeType(r.Header) != ""
	hasBody := r.Body != nil && r.Body != http.NoBody
	chunked := hasBody && (r.ContentLength < 0 || len(r.Trailer) > 0)
	hasBody = hasBody && (chunked || r.ContentLength > 0)
	lr := leanRequest{body: r.Body, length: r.ContentLength, trailer: r.Trailer, hasBody: hasBody, chunked: chunked, upgrade: upgrade}
	uc, err := h.sendLean(ctx, ep, &lr, watch, func(w *h1.Writer) {
		writeLeanRequest(w, r, host, target, chunked, upgrade)
	})
	if err != nil {
		return nil, err
	}
	resp := leanResponseOf(uc, r.Method == http.MethodHead)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &upgradedBody{uc: uc} // the connection is the upgraded protocol's now
		return resp, nil
	}
	lb := resp.Body.(*leanBody)
	lb.uc, lb.ep, lb.c = uc, ep, h.Clients
	if lb.left == 0 && lb.chunked == nil && !lb.untilEOF {
		lb.release()
		resp.Body = http.NoBody
	}
	return resp, nil
}

// The requests roundTripLean and the inbound lean sender refuse to send.
var (
	errInvalidMethod    = &RouteError{Status: http.StatusBadRequest, Reason: "invalid request method"}
	errInvalidAuthority = &RouteError{Status: http.StatusBadRequest, Reason: "invalid request authority"}
)

// leanRequest is what sendLean sends after the request head: the body (of length bytes,
// or chunked with trailer's fields after it) when hasBody, and whether the request asks
// for an upgrade (a 101 is then a final response).
type leanRequest struct {
	body                      io.Reader
	length                    int64
	trailer                   http.Header
	hasBody, chunked, upgrade bool
}

// sendLean sends a request over a pooled HTTP/1.1 connection to ep: its head, which
// writeHead writes (again on a fresh connection when a reused one turns out closed by the
// endpoint and the request has no body), then lr's body. It returns the connection with
// the final response head read into uc.head and not consumed (interim responses are
// skipped; with lr.upgrade a 101 is final); the caller owns the connection. A response
// whose framing the lean codec does not relay (conflicting framing, an unrequested
// protocol switch) is an error. With watch, ctx ending before the response head arrives
// aborts the exchange (route timeouts).
func (h *Handler) sendLean(ctx context.Context, ep *Endpoint, lr *leanRequest, watch bool, writeHead func(w *h1.Writer)) (*upstreamConn, error) {
	for attempt := 0; ; attempt++ {
		uc, reused, err := ep.pool.get(ctx, h.Clients, ep.hostPort)
		if err != nil {
			return nil, err
		}
		var stop func() bool
		if watch {
			conn := uc.conn
			stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
		}
		uc.w.Reset(uc.conn)
		uc.r.FlushBefore(uc.w, nil)
		writeHead(uc.w)
		var bodyErr error
		switch {
		case !lr.hasBody || attempt > 0: // only a request without a body is sent again
		case lr.chunked:
			bodyErr = copyChunkedRequestBody(uc.w, lr.body, lr.trailer)
		default:
			bodyErr = copyRequestBody(uc.w, lr.body, lr.length)
		}
		if bodyErr == nil {
			err = readFinalHead(uc, lr.upgrade)
		}
		if stop != nil && !stop() {
			// ctx ended during the exchange: the connection is unusable.
			uc.conn.Close()
			return nil, context.Cause(ctx)
		}
		if bodyErr != nil {
			uc.conn.Close()
			return nil, bodyErr
		}
		if err != nil {
			stale := reused && !lr.hasBody && attempt == 0 && staleConn(err, uc)
			uc.conn.Close()
			if stale {
				continue // the endpoint closed the idle connection; nothing reached it
			}
			return nil, err
		}
		return uc, nil
	}
}

// writeLeanRequest writes the request head: end-to-end fields of r (Host and framing
// fields replaced by their proper values) and Content-Length when there is a body, or
// chunked framing and the declared trailers' names; Connection: Upgrade for an upgrade
// (r's Upgrade field names the protocol).
func writeLeanRequest(w *h1.Writer, r *http.Request, host, target string, chunked, upgrade bool) {
	w.WriteString(r.Method)
	w.WriteString(" ")
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	for k, vv := range r.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
			continue
		}
		for _, v := range vv {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if upgrade {
		w.WriteString("Connection: Upgrade\r\n")
	}
	switch {
	case chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
		if len(r.Trailer) > 0 {
			w.WriteString("Trailer: ")
			sep := ""
			for k := range r.Trailer {
				w.WriteString(sep)
				w.WriteString(k)
				sep = ", "
			}
			w.WriteString("\r\n")
		}
	case r.ContentLength > 0 && r.Body != nil && r.Body != http.NoBody:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(r.ContentLength, 10))
		w.WriteString("\r\n")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	w.WriteString("\r\n")
}

var errShortRequestBody = errors.New("request body shorter than its Content-Length")

// sizedWriterTo is a body that writes up to n bytes of itself to w and returns once it
// has (an HTTP/2 stream's request body: its large DATA goes out from the buffers it
// arrived in, without a copy into a relay buffer); fewer bytes and a nil error mean that
// it ended early.
type sizedWriterTo interface {
	WriteNTo(w io.Writer, n int64) (int64, error)
}

// copyRequestBody relays exactly n bytes of body to w, and returns once they are sent.
func copyRequestBody(w *h1.Writer, body io.Reader, n int64) error {
	if sb, ok := body.(sizedWriterTo); ok {
		written, err := sb.WriteNTo(w, n)
		if err == nil && written < n {
			err = errShortRequestBody
		}
		return err
	}
	var lease relaybuf.Lease
	defer lease.Release()
	for n > 0 {
		buf := lease.Bytes()
		k, err := body.Read(buf[:min(int64(len(buf)), n)])
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return werr
			}
			n -= int64(k)
		}
		lease.Read(k)
		if err != nil {
			if err == io.EOF && n == 0 {
				break
			}
			if err == io.EOF {
				return errShortRequestBody
			}
			return err
		}
	}
	return nil
}

// copyChunkedRequestBody relays body to w in chunks, each flushed as it comes (a client
// may stream its request), then the last chunk with trailer's fields, which the body
// fills by its end.
func copyChunkedRequestBody(w *h1.Writer, body io.Reader, trailer http.Header) error {
	var lease relaybuf.Lease
	defer lease.Release()
	for {
		buf := lease.Bytes()
		k, err := body.Read(buf)
		if k > 0 {
			w.WriteString(strconv.FormatInt(int64(k), 16))
			w.WriteString("\r\n")
			w.Write(buf[:k])
			if _, werr := w.WriteString("\r\n"); werr != nil {
				return werr
			}
			if werr := w.Flush(); werr != nil {
				return werr
			}
		}
		lease.Read(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	w.WriteString("0\r\n")
	for k, vv := range trailer {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

// errEndpointResponse reports a response the lean codec does not relay.
var errEndpointResponse = &RouteError{Status: http.StatusBadGateway, Reason: "endpoint sent a response with conflicting framing or an unexpected protocol switch"}

// readFinalHead reads the final response head into uc.head, not consumed: interim
// responses are skipped (not relayed); with upgrade, a 101 is final.
func readFinalHead(uc *upstreamConn, upgrade bool) error {
	rh := &uc.head
	for {
		if err := uc.r.ReadResponse(rh); err != nil {
			return err
		}
		if rh.Status >= 200 {
			break
		}
		if rh.Status == http.StatusSwitchingProtocols {
			if !upgrade {
				return errEndpointResponse
			}
			return nil
		}
		uc.r.Consume(rh)
	}
	if rh.Unusual {
		return errEndpointResponse
	}
	return nil
}

// leanResponseOf consumes the final response head in uc.head (see readFinalHead) and
// returns it as a response (with its header fields copied out) with a *leanBody not yet
// tied to its pool; a 101 is returned without a body.
func leanResponseOf(uc *upstreamConn, head bool) *http.Response {
	rh := &uc.head
	if rh.Status == http.StatusSwitchingProtocols {
		resp := &http.Response{StatusCode: rh.Status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: fieldsHeader(rh, true, nil)}
		// The switch itself is relayed to the client.
		resp.Header["Connection"] = []string{"Upgrade"}
		if v := rh.Get("upgrade"); v != nil {
			resp.Header["Upgrade"] = []string{string(v)}
		}
		uc.r.Consume(rh)
		return resp
	}
	lr := &leanResponse{}
	header := fieldsHeader(rh, true, lr.slots[:])
	resp := &lr.resp
	*resp = http.Response{
		StatusCode: rh.Status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: header, ContentLength: rh.ContentLength, Close: rh.Close,
	}
	lb := &lr.body
	lb.reusable = !rh.Close
	switch {
	case head || rh.Bodyless(nil):
		resp.ContentLength = bodylessLength(rh, head)
	case rh.Chunked:
		resp.ContentLength = -1
		resp.Trailer = http.Header{}
		lb.chunked = &h1.ChunkedBody{R: uc.r, Trailer: func(name, value []byte) {
			k := canonicalName(name)
			resp.Trailer[k] = append(resp.Trailer[k], string(value))
		}}
	case rh.ContentLength >= 0:
		lb.left = rh.ContentLength
	default:
		resp.ContentLength = -1
		lb.untilEOF, lb.reusable, resp.Close = true, false, true
	}
	uc.r.Consume(rh)
	resp.Body = lb
	return resp
}

// bodylessLength is the length a response without a body (to a HEAD request when head,
// or a 204 or 304) declares to its client: a HEAD response's Content-Length (-1, unknown,
// when it has none: the client is not told 0), 0 otherwise.
func bodylessLength(rh *h1.Head, head bool) int64 {
	if head {
		return rh.ContentLength
	}
	return 0
}

// fieldsHeader copies the end-to-end fields of head (and Host unless withHost is false
// for a request) into a header map with three allocations: the map, one string holding
// every value and one slice holding every value slot; two when buf (an array living as
// long as the map's values) has room for the slots.
func fieldsHeader(head *h1.Head, withHost bool, buf []string) http.Header {
	// Which fields to keep is decided once per field (hop-by-hop names and the
	// Connection header's tokens are compared), not in each of the three passes.
	var keepBuf [32]bool
	keep := keepBuf[:0]
	n, size := 0, 0
	for _, f := range head.Fields {
		k := !head.IsHopByHop(f.Name) && (withHost || !h1.EqualFold(f.Name, "host"))
		keep = append(keep, k)
		if k {
			n++
			size += len(f.Value)
		}
	}
	header := make(http.Header, n+1)
	var all strings.Builder
	all.Grow(size)
	for j, f := range head.Fields {
		if keep[j] {
			all.Write(f.Value)
		}
	}
	values := all.String()
	var slots []string
	if n <= cap(buf) {
		slots = buf[:n]
	} else {
		slots = make([]string, n)
	}
	i, off := 0, 0
	for j, f := range head.Fields {
		if !keep[j] {
			continue
		}
		k := canonicalName(f.Name)
		slots[i] = values[off : off+len(f.Value)]
		off += len(f.Value)
		if vv, ok := header[k]; ok {
			header[k] = append(vv, slots[i])
		} else {
			header[k] = slots[i : i+1 : i+1]
		}
		i++
	}
	return header
}

// canonicalName returns the canonical form of a field name, without allocating for the
// common ones.
func canonicalName(name []byte) string {
	switch string(name) {
	case "Content-Length", "content-length":
		return "Content-Length"
	case "Content-Type", "content-type":
		return "Content-Type"
	case "Date", "date":
		return "Date"
	case "Server", "server":
		return "Server"
	case "Cache-Control", "cache-control":
		return "Cache-Control"
	case "Content-Encoding", "content-encoding":
		return "Content-Encoding"
	case "Etag", "ETag", "etag":
		return "Etag"
	case "Last-Modified", "last-modified":
		return "Last-Modified"
	case "Location", "location":
		return "Location"
	case "Vary", "vary":
		return "Vary"
	case "User-Agent", "user-agent":
		return "User-Agent"
	case "Accept", "accept":
		return "Accept"
	case "Accept-Encoding", "accept-encoding":
		return "Accept-Encoding"
	case "Accept-Language", "accept-language":
		return "Accept-Language"
	case "Authorization", "authorization":
		return "Authorization"
	case "Cookie", "cookie":
		return "Cookie"
	case "Set-Cookie", "set-cookie":
		return "Set-Cookie"
	case "Referer", "referer":
		return "Referer"
	case "Origin", "origin":
		return "Origin"
	case "X-Forwarded-For", "x-forwarded-for":
		return "X-Forwarded-For"
	case "X-Request-Id", "x-request-id":
		return "X-Request-Id"
	case "L5d-Dst-Override", "l5d-dst-override":
		return "L5d-Dst-Override"
	}
	return http.CanonicalHeaderKey(string(name))
}

// validMethod reports whether m is a non-empty token.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

// upgradedBody is the connection of a response that switched protocols, as its body:
// it reads what the codec holds past the response head, then the connection, and writes
// to the connection (serveUpgrade relays both ways). The connection is never pooled.
type upgradedBody struct{ uc *upstreamConn }

func (b *upgradedBody) Read(p []byte) (int, error) {
	if buf := b.uc.r.Buffered(); len(buf) > 0 {
		n := copy(p, buf)
		b.uc.r.Discard(n)
		return n, nil
	}
	return b.uc.conn.Read(p)
}

func (b *upgradedBody) Write(p []byte) (int, error) { return b.uc.conn.Write(p) }

func (b *upgradedBody) Close() error { return b.uc.conn.Close() }

// leanResponse is a response and its body in one allocation.
type leanResponse struct {
	resp http.Response
	body leanBody
	// slots hold the values of resp.Header when it has at most as many fields.
	slots [8]string
}

// leanBody is a response body read through the lean codec; the connection returns to
// the pool once the body has been read to its end.
type leanBody struct {
	uc       *upstreamConn
	ep       *Endpoint
	c        *Clients
	left     int64 // bytes left of a body of known length
	chunked  *h1.ChunkedBody
	untilEOF bool
	reusable bool
	done     bool
}

func (b *leanBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	switch {
	case b.chunked != nil:
		n, err := b.chunked.Read(p)
		if err == io.EOF {
			b.release()
		} else if err != nil {
			b.fail()
		}
		return n, err
	case b.untilEOF:
		n, err := b.uc.r.Read(p)
		if err != nil {
			b.release()
			if errors.Is(err, io.EOF) {
				return n, io.EOF
			}
		}
		return n, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.uc.r.Read(p[:min(int64(len(p)), b.left)])
	b.left -= int64(n)
	if b.left == 0 {
		b.release()
		return n, io.EOF
	}
	if err != nil {
		b.fail()
		return n, h1.ErrBodyTruncated
	}
	return n, nil
}

func (b *leanBody) fail() {
	b.reusable = false
	b.release()
}

// Close gives the connection back when the body was read through, else closes it.
func (b *leanBody) Close() error {
	if !b.done {
		b.fail()
	}
	return nil
}

func (b *leanBody) release() {
	if b.done {
		return
	}
	b.done = true
	if b.reusable && len(b.uc.r.Buffered()) == 0 {
		b.ep.pool.put(b.c, b.uc, time.Now())
	} else {
		b.uc.conn.Close()
	}
}
