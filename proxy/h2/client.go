package h2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/l5d-go/l5d/proxy/internal/relaybuf"
)

// Transport is an http.RoundTripper speaking HTTP/2 with prior knowledge over
// connections from Connect, one shared connection per address and tag (more when the
// peer's stream limit is reached). It is safe for concurrent use.
type Transport struct {
	// Connect opens a connection to addr ("host:port"); it may add TLS.
	Connect func(ctx context.Context, addr string) (net.Conn, error)
	// Tag, when set, returns what Connect would currently do differently for addr (the
	// TLS identity it would require). A connection opened under one tag is not used for
	// requests made under another, so a connection opened in plaintext before an
	// address's identity was known is not reused once it is.
	Tag func(addr string) string
	// Log receives connection errors at debug level; nil discards them.
	Log *slog.Logger

	mu    sync.Mutex
	conns map[poolKey][]*clientConn
	dials map[poolKey]*dialCall
}

// poolKey names the connections interchangeable for a request.
type poolKey struct{ addr, tag string }

type dialCall struct {
	done chan struct{}
	cc   *clientConn
	err  error
}

// RoundTrip sends req on a shared connection and returns the response once its headers
// arrive; the body streams afterwards. Request bodies are sent concurrently.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	for attempt := 0; ; attempt++ {
		cc, err := t.conn(req.Context(), addr)
		if err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		resp, err := cc.roundTrip(req)
		if errors.Is(err, errRetryable) && attempt < 2 {
			continue // the connection was going away before the request was sent
		}
		if errors.Is(err, errConnFull) && attempt < 10 {
			continue // another request took the last stream: pick or open another connection
		}
		return resp, err
	}
}

// CloseIdleConnections closes connections with no active streams.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*clientConn
	for key, list := range t.conns {
		keep := list[:0]
		for _, cc := range list {
			if cc.w.streams.Load() == 0 {
				idle = append(idle, cc)
			} else {
				keep = append(keep, cc)
			}
		}
		t.conns[key] = keep
	}
	t.mu.Unlock()
	for _, cc := range idle {
		cc.close(errConnClosed)
	}
}

func (t *Transport) conn(ctx context.Context, addr string) (*clientConn, error) {
	key := poolKey{addr: addr}
	if t.Tag != nil {
		key.tag = t.Tag(addr)
	}
	t.mu.Lock()
	if t.conns == nil {
		t.conns = map[poolKey][]*clientConn{}
		t.dials = map[poolKey]*dialCall{}
	}
	list := t.conns[key]
	live := list[:0]
	var best *clientConn
	for _, cc := range list {
		if cc.usable() {
			live = append(live, cc)
			if cc.hasCapacity() && (best == nil || cc.w.streams.Load() < best.w.streams.Load()) {
				best = cc
			}
		}
	}
	t.conns[key] = live
	if best != nil {
		t.mu.Unlock()
		return best, nil
	}
	d := t.dials[key]
	if d == nil {
		d = &dialCall{done: make(chan struct{})}
		t.dials[key] = d
		go func() {
			d.cc, d.err = t.dial(context.WithoutCancel(ctx), addr)
			t.mu.Lock()
			delete(t.dials, key)
			if d.err == nil {
				t.conns[key] = append(t.conns[key], d.cc)
			}
			t.mu.Unlock()
			close(d.done)
		}()
	}
	t.mu.Unlock()
	select {
	case <-d.done:
		return d.cc, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *Transport) dial(ctx context.Context, addr string) (*clientConn, error) {
	c, err := t.Connect(ctx, addr)
	if err != nil {
		return nil, err
	}
	cc := &clientConn{t: t, conn: c, w: newFrameWriter(c), streams: map[uint32]*clientStream{}, nextID: 1, maxStreams: 100,
		settled: make(chan struct{})}
	cc.inflow.give(connWindow)
	cc.w.lock()
	cc.w.raw(http2.ClientPreface)
	cc.w.err = cc.w.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxFrameRead},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList},
	)
	if cc.w.err == nil {
		cc.w.err = cc.w.fr.WriteWindowUpdate(0, connWindow-65535)
	}
	err = cc.w.err
	cc.w.unlock()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("h2: starting connection to %s: %w", addr, err)
	}
	go cc.readLoop()
	// The server's preface is its SETTINGS frame: wait for it (briefly), so that requests
	// respect its stream limit and frame size from the first one on rather than being
	// refused by a server with a limit below the default assumed until then.
	t0 := time.NewTimer(settingsWait)
	defer t0.Stop()
	select {
	case <-cc.settled:
	case <-t0.C:
	case <-ctx.Done():
	}
	return cc, nil
}

// settingsWait bounds how long a new connection waits for the server's SETTINGS.
const settingsWait = time.Second

// errRetryable marks requests never sent because the connection was closing.
var errRetryable = errors.New("h2: connection closing, request not sent")

// errConnFull marks requests not sent because the connection had reached the server's
// SETTINGS_MAX_CONCURRENT_STREAMS, which the server enforces.
var errConnFull = errors.New("h2: connection at its stream limit, request not sent")

type clientConn struct {
	t      *Transport
	conn   net.Conn
	w      *frameWriter
	credit connCredit
	inflow inflow // what the server may still send on the connection

	mu         sync.Mutex
	streams    map[uint32]*clientStream
	nextID     uint32
	maxStreams uint32
	closed     bool
	goAway     bool
	err        error

	// settled is closed once the server's first SETTINGS frame was applied (or the
	// connection ended).
	settled chan struct{}

	// ready are streams whose response headers the read loop has taken but not yet
	// handed to their callers (see readLoop); used by the read loop only.
	ready []*clientStream
}

// announce hands the responses in ready to their callers.
func (cc *clientConn) announce() {
	for i, cs := range cc.ready {
		cs.respCh <- struct{}{}
		cc.ready[i] = nil
	}
	cc.ready = cc.ready[:0]
}

func (cc *clientConn) usable() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return !cc.closed && !cc.goAway && cc.nextID < 1<<31-2
}

func (cc *clientConn) hasCapacity() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return uint32(len(cc.streams)) < cc.maxStreams
}

type clientStream struct {
	cc  *clientConn
	id  uint32
	req *http.Request // nil for a RoundTripHead request
	// slots hold the values of the response's header when it has at most as many fields.
	slots [headerSlots]string
	// hasBody: the request has a body, which sendBody sends.
	hasBody bool
	send    sendWindow // guarded by cc.w.mu
	body    recvPipe
	inflow  inflow // what the server may still send on the stream
	resp    *http.Response
	// respVal and bodyVal back resp and its Body, made with the stream.
	respVal http.Response
	bodyVal responseBody
	// fields is set for a RoundTripFields request, whose response is fieldsResp: the
	// response's regular fields as decoded, kept in fieldBuf when they fit, and its
	// trailers (guarded by cc.mu) instead of resp's header maps.
	fields      bool
	fieldsResp  Response
	fieldBuf    [headerSlots]hpack.HeaderField
	trailFields []hpack.HeaderField
	// loopDone is set, under cc.mu, when the read loop ended a RoundTripFields stream
	// (endResponse) and forgot it: the stream goes back to streamPool when its caller
	// closes the response. One the caller, a reset or a connection failure removed first
	// is left to the garbage collector, as the read loop may still hold it.
	loopDone bool
	// inlineBuf backs the body pipe's inline chunk (set for pooled streams only).
	inlineBuf *[minPooledChunk]byte
	// respCh receives once resp is set (respErr nil) or the stream failed (respErr, set
	// before the send).
	respCh  chan struct{}
	respErr error
	gotResp bool // guarded by cc.mu
	trailer http.Header
}

// RequestHead is a request without a body, as RoundTripHead sends it: its pseudo-header
// values and its regular fields, which Fields passes to enc with lower-case names and
// without connection-specific fields (RFC 9113 section 8.2.2). Fields is called once,
// under the connection's writer lock.
type RequestHead struct {
	Method, Authority, Path string
	Fields                  func(enc func(name, value string))
}

// RoundTripHead sends the request h, which has no body, to addr as RoundTrip does, and
// returns the response once its headers arrive (its Request field is nil). It spares a
// caller holding the request in another form (an HTTP/1 head) the *http.Request and
// header map RoundTrip takes; ctx ending before the response headers cancels the stream.
func (t *Transport) RoundTripHead(ctx context.Context, addr string, h *RequestHead) (*http.Response, error) {
	cs, err := t.sendHead(ctx, addr, h, false)
	if err != nil {
		return nil, err
	}
	return cs.resp, nil
}

// RoundTripFields is RoundTripHead for a caller that relays the response in another form
// (an HTTP/1 head): the response comes as its decoded fields, without the header map
// and http.Response RoundTripHead builds. Interim (1xx) responses are skipped, as
// RoundTrip skips them.
func (t *Transport) RoundTripFields(ctx context.Context, addr string, h *RequestHead) (*Response, error) {
	cs, err := t.sendHead(ctx, addr, h, true)
	if err != nil {
		return nil, err
	}
	return &cs.fieldsResp, nil
}

// sendHead sends h on a connection to addr, on another one when the first was going away
// or full, and returns its stream once the response headers arrived.
func (t *Transport) sendHead(ctx context.Context, addr string, h *RequestHead, fields bool) (*clientStream, error) {
	for attempt := 0; ; attempt++ {
		cc, err := t.conn(ctx, addr)
		if err != nil {
			return nil, err
		}
		cs, err := cc.send(ctx, nil, fields, func(enc func(string, string)) {
			enc(":method", h.Method)
			enc(":scheme", "http")
			enc(":authority", h.Authority)
			enc(":path", h.Path)
			h.Fields(enc)
		})
		if errors.Is(err, errRetryable) && attempt < 2 {
			continue
		}
		if errors.Is(err, errConnFull) && attempt < 10 {
			continue
		}
		return cs, err
	}
}

// Response is a response as RoundTripFields returns it: its head as decoded and its body.
// Read and Close are those of an http.Response's Body: reading to io.EOF ends the
// exchange, closing before that resets the stream, and the caller closes it in any case.
type Response struct {
	// Status is the final response's :status as the server sent it (200 or more).
	Status int
	// Fields are the response's regular header fields in the order received: lower-case
	// token names and valid values (the header reader refuses others), any
	// connection-specific ones included, as http.Response's Header would have them.
	// The slice is valid until Close.
	Fields []hpack.HeaderField
	// ContentLength is the first content-length field's value as RoundTrip's
	// http.Response has it: -1 when there is none or it is not a number, 0 for a
	// response that ended with its headers.
	ContentLength int64

	cs  *clientStream
	eof bool // Read returned io.EOF
}

// streamPool holds the streams of RoundTripFields requests (see clientStream.loopDone):
// their response (head, fields and body pipe) is the stream's, so that a request costs no
// allocation for them. Each has a buffer of its own for the response body's first small
// DATA frame (recvPipe.inline), kept across uses.
var streamPool = sync.Pool{New: func() any {
	return &clientStream{respCh: make(chan struct{}, 1), inlineBuf: new([minPooledChunk]byte)}
}}

// recycle clears a RoundTripFields stream nothing refers to any longer and pools it; its
// respCh, which delivered exactly one value and was drained, and its inlineBuf, which
// its pipe released, are kept.
func (cs *clientStream) recycle() {
	ch, buf := cs.respCh, cs.inlineBuf
	*cs = clientStream{respCh: ch, inlineBuf: buf}
	streamPool.Put(cs)
}

// Read reads the response body.
func (r *Response) Read(p []byte) (int, error) {
	n, err := r.cs.body.Read(p)
	if err == io.EOF {
		r.eof = true
	}
	return n, err
}

// WriteTo writes the response body to w until its end (a nil error) or an error, large
// DATA straight from the buffers it arrived in (see recvPipe.writeTo); it is Read's
// alternative for a relay, and the trailers are then ready as after Read's io.EOF.
func (r *Response) WriteTo(w io.Writer) (int64, error) {
	n, err := r.cs.body.writeTo(w, -1)
	if err == io.EOF {
		r.eof, err = true, nil
	}
	return n, err
}

// Close ends the response, resetting the stream if its body was not read to the end. It
// is called once, after which neither the response nor its fields may be used.
func (r *Response) Close() error {
	cs := r.cs
	cs.cancel(http2.ErrCodeCancel, errBodyClosed)
	cc := cs.cc
	cc.mu.Lock()
	recycle := cs.loopDone
	cc.mu.Unlock()
	if recycle {
		cs.recycle()
	}
	return nil
}

// Trailers returns the fields of the response's trailer section (lower-case names, in the
// order received), nil when it had none or before Read returned io.EOF (as the Trailer
// of RoundTrip's http.Response).
func (r *Response) Trailers() []hpack.HeaderField {
	if !r.eof {
		return nil
	}
	cc := r.cs.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return r.cs.trailFields
}

func (cc *clientConn) roundTrip(req *http.Request) (*http.Response, error) {
	authority := req.Host
	if authority == "" {
		authority = req.URL.Host
	}
	cs, err := cc.send(req.Context(), req, false, func(enc func(string, string)) {
		enc(":method", req.Method)
		enc(":scheme", "http")
		enc(":authority", authority)
		enc(":path", req.URL.RequestURI())
		writeHeaderFields(enc, req.Header)
		if len(req.Trailer) > 0 {
			enc("trailer", trailerNames(req.Trailer)) // declared; values may come at the end
		}
		if req.ContentLength > 0 && req.Header.Get("Content-Length") == "" {
			enc("content-length", strconv.FormatInt(req.ContentLength, 10))
		}
	})
	if err != nil {
		return nil, err
	}
	return cs.resp, nil
}

// send opens a stream whose HEADERS carry the fields head writes, sends req's body if it
// has one (req is nil for a request without a body), and waits for the response headers
// or for ctx to end. The stream's response is its resp, or its fieldsResp when fields
// is set.
func (cc *clientConn) send(ctx context.Context, req *http.Request, fields bool, head func(enc func(string, string))) (*clientStream, error) {
	hasBody := req != nil && req.Body != nil && req.Body != http.NoBody // ContentLength 0 with a Body means unknown
	var cs *clientStream
	if fields {
		cs = streamPool.Get().(*clientStream)
		cs.cc, cs.fields = cc, true
	} else {
		cs = &clientStream{cc: cc, req: req, hasBody: hasBody, respCh: make(chan struct{}, 1)}
	}
	cs.body.init(cs)
	if cs.inlineBuf != nil {
		cs.body.inline = cs.inlineBuf[:0]
	}
	cs.inflow.give(streamWindow)
	cc.w.lock()
	cc.mu.Lock()
	if cc.closed || cc.goAway {
		cc.mu.Unlock()
		cc.w.unlock()
		return nil, errRetryable
	}
	if uint32(len(cc.streams)) >= cc.maxStreams {
		cc.mu.Unlock()
		cc.w.unlock()
		return nil, errConnFull
	}
	cs.id = cc.nextID
	cc.nextID += 2
	cc.streams[cs.id] = cs
	cc.mu.Unlock()
	cc.w.streams.Add(1)
	cs.send.window = int64(cc.w.initialWindow)
	cc.w.headers(cs.id, !hasBody, head)
	err := cc.w.err
	cc.w.unlock()
	if err != nil {
		cs.finish(err)
		if req != nil && req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("h2: sending request: %w", err)
	}
	if hasBody {
		go cs.sendBody(req.Body)
	} else if req != nil && req.Body != nil {
		req.Body.Close()
	}
	select {
	case <-cs.respCh:
		if cs.respErr != nil {
			return nil, cs.respErr
		}
		return cs, nil
	case <-ctx.Done():
		cs.cancel(http2.ErrCodeCancel, ctx.Err())
		return nil, ctx.Err()
	}
}

// credit acknowledges consumed response bytes (see recvPipe.credit).
func (cs *clientStream) credit(conn, stream int) {
	cc := cs.cc
	if v := cc.credit.add(conn); v > 0 || stream > 0 {
		cc.inflow.give(v)
		cs.inflow.give(int64(stream))
		cc.w.lockControl()
		if cc.w.err == nil && v > 0 {
			cc.w.err = cc.w.fr.WriteWindowUpdate(0, uint32(v))
		}
		if cc.w.err == nil && stream > 0 {
			cc.w.err = cc.w.fr.WriteWindowUpdate(cs.id, uint32(stream))
		}
		cc.w.unlock()
	}
}

// sendBody copies the request body into DATA frames. body is the request's Body when the
// stream was sent: the caller may set another on the request once RoundTrip returns (a
// retry's replay of it) while this one is still being sent.
func (cs *clientStream) sendBody(body io.ReadCloser) {
	cc := cs.cc
	defer body.Close()
	var lease relaybuf.Lease
	defer lease.Release()
	for {
		buf := lease.Bytes()
		n, rerr := body.Read(buf)
		end := rerr == io.EOF
		if n > 0 || end {
			cc.w.lock()
			trailers := end && hasValues(cs.req.Trailer)
			err := cc.w.data(cs.id, &cs.send, buf[:n], end && !trailers)
			if err == nil && trailers {
				cc.w.headers(cs.id, true, func(enc func(string, string)) { writeHeaderFields(enc, cs.req.Trailer) })
				err = cc.w.err
			}
			cc.w.unlock()
			if err != nil {
				return
			}
		}
		lease.Read(n)
		if end {
			return
		}
		if rerr != nil {
			cs.cancel(http2.ErrCodeCancel, rerr)
			return
		}
	}
}

// hasValues reports whether a trailer map holds any value (a request's Trailer map may
// only declare names).
func hasValues(h http.Header) bool {
	for _, vv := range h {
		if len(vv) > 0 {
			return true
		}
	}
	return false
}

// cancel resets the stream and fails whoever waits on it.
func (cs *clientStream) cancel(code http2.ErrCode, err error) {
	cc := cs.cc
	cc.mu.Lock()
	_, live := cc.streams[cs.id]
	cc.mu.Unlock()
	if live {
		cc.w.lockControl()
		if cc.w.err == nil {
			cc.w.err = cc.w.fr.WriteRSTStream(cs.id, code)
		}
		cc.w.unlock()
	}
	cs.finish(err)
}

// finish removes the stream and ends its response (or fails the round trip) with err.
func (cs *clientStream) finish(err error) {
	cc := cs.cc
	cc.mu.Lock()
	_, live := cc.streams[cs.id]
	delete(cc.streams, cs.id)
	got := cs.gotResp
	cs.gotResp = true
	cc.mu.Unlock()
	if live {
		cc.w.streams.Add(-1)
	}
	cc.w.lockState()
	cs.send.reset = true
	cc.w.cond.Broadcast()
	cc.w.unlockState()
	if !got {
		cs.respErr = err
		cs.respCh <- struct{}{}
	}
	if n := cs.body.discard(err); n > 0 {
		cs.credit(n, 0)
	}
}

// responseBody is what the caller reads; closing it early resets the stream.
type responseBody struct{ cs *clientStream }

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.cs.body.Read(p)
	if err == io.EOF {
		b.cs.copyTrailers()
	}
	return n, err
}

// WriteTo writes the body to w until its end or an error, as Response.WriteTo does.
func (b *responseBody) WriteTo(w io.Writer) (int64, error) {
	n, err := b.cs.body.writeTo(w, -1)
	if err == io.EOF {
		b.cs.copyTrailers()
		err = nil
	}
	return n, err
}

func (b *responseBody) Close() error {
	b.cs.cancel(http2.ErrCodeCancel, errBodyClosed)
	return nil
}

func (cs *clientStream) copyTrailers() {
	cs.cc.mu.Lock()
	t := cs.trailer
	cs.trailer = nil
	cs.cc.mu.Unlock()
	if len(t) > 0 && cs.resp.Trailer == nil {
		cs.resp.Trailer = make(http.Header, len(t))
	}
	for k, vv := range t {
		cs.resp.Trailer[k] = vv
	}
}

func (cc *clientConn) stream(id uint32) *clientStream {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.streams[id]
}

func (cc *clientConn) close(err error) {
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		return
	}
	cc.closed = true
	cc.err = err
	streams := cc.streams
	cc.streams = map[uint32]*clientStream{}
	cc.mu.Unlock()
	cc.conn.Close()
	cc.w.fail(errConnClosed)
	for _, cs := range streams {
		cc.w.streams.Add(-1)
		cs.mu().Lock()
		got := cs.gotResp
		cs.gotResp = true
		cs.mu().Unlock()
		if !got {
			cs.respErr = fmt.Errorf("h2: connection lost before the response: %w", err)
			cs.respCh <- struct{}{}
		}
		cs.body.close(fmt.Errorf("h2: connection lost: %w", err))
	}
}

func (cs *clientStream) mu() *sync.Mutex { return &cs.cc.mu }

func (cc *clientConn) readLoop() {
	in := newFrameIn(cc.conn)
	br, fr := in.br, in.fr
	hr := newHeaderReader(fr)
	var err error
	settled := false
	defer func() {
		if !settled {
			close(cc.settled)
		}
	}()
	for {
		// Responses whose headers arrived are announced once no further complete frame
		// is buffered, so that a waiting caller wakes once with the body that came
		// along rather than again for each DATA frame.
		if len(cc.ready) > 0 && !frameBuffered(br) {
			cc.announce()
		}
		var f http2.Frame
		var d *dataIn
		f, d, err = in.next()
		if d != nil {
			err = cc.onData(d)
			d.release()
			if err != nil {
				break
			}
			continue
		}
		if hf, ok := f.(*http2.HeadersFrame); ok && err == nil {
			var hb *headerBlock
			if hb, err = hr.read(hf); err == nil {
				cc.onHeaders(hb)
				hr.release()
				continue
			}
		}
		if err != nil {
			var se http2.StreamError
			var ce http2.ConnectionError
			switch {
			case errors.As(err, &se):
				if cs := cc.stream(se.StreamID); cs != nil {
					cs.cancel(se.Code, se)
				}
				continue
			case errors.As(err, &ce):
				err = cc.goAwayErr(http2.ErrCode(ce), fmt.Sprintf("reading frame: %v", err))
			case errors.Is(err, http2.ErrFrameTooLarge):
				err = cc.goAwayErr(http2.ErrCodeFrameSize, "frame too large")
			}
			break
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			err = cc.onSettings(f)
			if !settled {
				settled = true
				close(cc.settled)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				cc.w.lockControl()
				if cc.w.err == nil {
					cc.w.err = cc.w.fr.WritePing(true, f.Data)
				}
				cc.w.unlock()
			}
		case *http2.WindowUpdateFrame:
			err = cc.onWindowUpdate(f)
		case *http2.RSTStreamFrame:
			if cs := cc.stream(f.StreamID); cs != nil {
				err := fmt.Errorf("h2: stream reset by the server: %v", f.ErrCode)
				if f.ErrCode == http2.ErrCodeRefusedStream && !cs.hasBody {
					err = errRetryable // not processed (RFC 9113 section 8.7), and nothing to resend
				}
				cs.finish(err)
			}
		case *http2.GoAwayFrame:
			cc.mu.Lock()
			cc.goAway = true
			var orphans []*clientStream
			for id, cs := range cc.streams {
				if id > f.LastStreamID {
					orphans = append(orphans, cs)
				}
			}
			cc.mu.Unlock()
			for _, cs := range orphans {
				cs.finish(errRetryable)
			}
		}
		if err != nil {
			break
		}
	}
	cc.announce()
	if cc.t.Log != nil {
		cc.t.Log.Debug("h2: connection ended", "remote", cc.conn.RemoteAddr(), "error", err)
	}
	cc.close(err)
}

// goAwayErr sends GOAWAY with code for a server's protocol violation and returns the
// error ending the connection.
func (cc *clientConn) goAwayErr(code http2.ErrCode, why string) error {
	cc.w.lock()
	if cc.w.err == nil {
		cc.w.err = cc.w.fr.WriteGoAway(0, code, []byte(why))
		cc.w.syncLocked()
	}
	cc.w.unlock()
	return fmt.Errorf("h2: %s (GOAWAY %v)", why, code)
}

// creditConn acknowledges n bytes received on the connection but not for a reader.
func (cc *clientConn) creditConn(n int) {
	if v := cc.credit.add(n); v > 0 {
		cc.inflow.give(v)
		cc.w.lockControl()
		if cc.w.err == nil {
			cc.w.err = cc.w.fr.WriteWindowUpdate(0, uint32(v))
		}
		cc.w.unlock()
	}
}

// onData takes a DATA frame's length from the receive windows (a server exceeding the
// connection's loses the connection with FLOW_CONTROL_ERROR, a stream's the stream) and
// queues its data for the response body (taking f's chunk).
func (cc *clientConn) onData(f *dataIn) error {
	if !cc.inflow.take(f.Length) {
		return cc.goAwayErr(http2.ErrCodeFlowControl, "server exceeded the connection receive window")
	}
	cs := cc.stream(f.StreamID)
	if cs == nil {
		cc.creditConn(int(f.Length))
		return nil
	}
	if !cs.inflow.take(f.Length) {
		cc.creditConn(int(f.Length))
		cs.cancel(http2.ErrCodeFlowControl, errors.New("h2: server exceeded the stream receive window"))
		return nil
	}
	data := f.data
	if pad := int(f.Length) - len(data); pad > 0 {
		cc.creditConn(pad)
		cs.body.forgive(pad)
	}
	if len(data) > 0 && !cs.body.push(f) {
		cs.credit(len(data), 0)
	}
	if f.Flags.Has(http2.FlagDataEndStream) {
		cs.endResponse()
	}
	return nil
}

// onSettings validates and applies the server's SETTINGS (see checkSettings).
func (cc *clientConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if code, err := checkSettings(f); err != nil {
		return cc.goAwayErr(code, err.Error())
	}
	cc.w.lockControl()
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(cc.w.initialWindow)
			cc.mu.Lock()
			defer cc.mu.Unlock()
			for _, cs := range cc.streams {
				if cs.send.window+delta > maxWindow {
					return errors.New("INITIAL_WINDOW_SIZE takes a stream window above 2^31-1")
				}
			}
			cc.w.initialWindow = int32(s.Val)
			for _, cs := range cc.streams {
				cs.send.window += delta
			}
		case http2.SettingMaxFrameSize:
			cc.w.maxFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			cc.w.henc.SetMaxDynamicTableSizeLimit(s.Val)
		case http2.SettingMaxConcurrentStreams:
			cc.mu.Lock()
			cc.maxStreams = s.Val
			cc.mu.Unlock()
		}
		return nil
	})
	if err == nil && cc.w.err == nil {
		cc.w.err = cc.w.fr.WriteSettingsAck()
	}
	cc.w.cond.Broadcast()
	cc.w.unlock()
	if err != nil {
		return cc.goAwayErr(http2.ErrCodeFlowControl, err.Error())
	}
	return nil
}

// onWindowUpdate adds to a send window; a window above 2^31-1 is a flow-control error
// (RFC 9113 section 6.9.1) of the connection or of the stream.
func (cc *clientConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	cc.w.lockState()
	var cs *clientStream
	overflow := false
	if f.StreamID == 0 {
		if overflow = cc.w.connSend+int64(f.Increment) > maxWindow; !overflow {
			cc.w.connSend += int64(f.Increment)
		}
	} else if cs = cc.stream(f.StreamID); cs != nil {
		if overflow = cs.send.window+int64(f.Increment) > maxWindow; !overflow {
			cs.send.window += int64(f.Increment)
		}
	}
	cc.w.cond.Broadcast()
	cc.w.unlockState()
	switch {
	case !overflow:
	case cs == nil:
		return cc.goAwayErr(http2.ErrCodeFlowControl, "connection send window above 2^31-1")
	default:
		cs.cancel(http2.ErrCodeFlowControl, errors.New("h2: server took the stream send window above 2^31-1"))
	}
	return nil
}

func (cc *clientConn) onHeaders(f *headerBlock) {
	cs := cc.stream(f.StreamID)
	if cs == nil {
		return
	}
	cc.mu.Lock()
	got := cs.gotResp
	cc.mu.Unlock()
	if f.Truncated {
		cs.cancel(http2.ErrCodeProtocol, errors.New("h2: response header list larger than announced"))
		return
	}
	if got {
		// Trailers: they end the stream and carry no pseudo-header field.
		if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
			cs.cancel(http2.ErrCodeProtocol, errors.New("h2: malformed response trailers"))
			return
		}
		if cs.fields {
			t := append([]hpack.HeaderField(nil), f.RegularFields()...)
			cc.mu.Lock()
			cs.trailFields = t
			cc.mu.Unlock()
		} else {
			t := fieldsHeader(f.RegularFields(), nil)
			cc.mu.Lock()
			cs.trailer = t
			cc.mu.Unlock()
		}
		cs.endResponse()
		return
	}
	status := 0
	for _, hf := range f.PseudoFields() {
		if hf.Name == ":status" {
			status, _ = strconv.Atoi(hf.Value)
		}
	}
	if status < 200 {
		if status >= 100 {
			return // interim response
		}
		cs.cancel(http2.ErrCodeProtocol, errors.New("h2: response without a valid :status"))
		return
	}
	if cs.fields {
		cs.fieldsHead(f, status)
		return
	}
	header := fieldsHeader(f.RegularFields(), cs.slots[:])
	cl := int64(-1)
	if v := header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			cl = n
		}
	}
	var trailer http.Header // made when trailers are declared or arrive
	for _, decl := range header["Trailer"] {
		if trailer == nil {
			trailer = http.Header{}
		}
		for _, k := range strings.Split(decl, ",") {
			if k = strings.TrimSpace(k); k != "" {
				trailer[http.CanonicalHeaderKey(k)] = nil
			}
		}
	}
	if f.StreamEnded() && cl < 0 {
		cl = 0 // a headers-only response (gRPC's trailers-only form) has no body
	}
	cs.bodyVal.cs = cs
	cs.respVal = http.Response{
		Status: StatusLine(status), StatusCode: status,
		Proto: "HTTP/2.0", ProtoMajor: 2, Header: header, ContentLength: cl,
		Body: &cs.bodyVal, Trailer: trailer, Request: cs.req,
	}
	cs.resp = &cs.respVal
	if f.StreamEnded() {
		cs.body.close(io.EOF)
	}
	cs.headDelivered(f.StreamEnded())
}

// headDelivered marks cs's response head as delivered and queues cs for its caller;
// ended: the head also ended the stream. Runs on the read loop.
func (cs *clientStream) headDelivered(ended bool) {
	cc := cs.cc
	cc.mu.Lock()
	cs.gotResp = true
	cc.mu.Unlock()
	cc.ready = append(cc.ready, cs)
	if ended {
		cs.endResponse()
	}
}

// fieldsHead takes the final response head f, with its status, of a RoundTripFields
// stream (see onHeaders).
func (cs *clientStream) fieldsHead(f *headerBlock, status int) {
	regular := f.RegularFields()
	r := &cs.fieldsResp
	if len(regular) <= len(cs.fieldBuf) {
		r.Fields = cs.fieldBuf[:copy(cs.fieldBuf[:], regular)]
	} else {
		r.Fields = append([]hpack.HeaderField(nil), regular...)
	}
	r.Status, r.ContentLength, r.cs = status, -1, cs
	for _, hf := range regular {
		if hf.Name == "content-length" {
			if n, err := strconv.ParseInt(hf.Value, 10, 64); err == nil {
				r.ContentLength = n
			}
			break
		}
	}
	if f.StreamEnded() {
		if r.ContentLength < 0 {
			r.ContentLength = 0
		}
		cs.body.close(io.EOF)
	}
	cs.headDelivered(f.StreamEnded())
}

// statusLines caches "200 OK" style status texts.
var statusLines = func() (lines [600]string) {
	for code := 100; code < len(lines); code++ {
		lines[code] = strconv.Itoa(code) + " " + http.StatusText(code)
	}
	return lines
}()

// StatusLine returns the status of a response with code as http.Response's Status has it
// and an HTTP/1.1 status line ends: "200 OK", "599 " for a code without a text. It
// allocates only for codes outside 100-599.
func StatusLine(code int) string {
	if code >= 100 && code < len(statusLines) {
		return statusLines[code]
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// endResponse marks the server's side finished: the body reads EOF and the stream is
// forgotten (its request body may still be sending, which no longer matters).
func (cs *clientStream) endResponse() {
	cs.body.close(io.EOF)
	cc := cs.cc
	cc.mu.Lock()
	_, live := cc.streams[cs.id]
	delete(cc.streams, cs.id)
	if live && cs.fields {
		cs.loopDone = true // the read loop, which alone calls endResponse, is done with it
	}
	cc.mu.Unlock()
	if live {
		cc.w.streams.Add(-1)
	}
}
