package h2

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Server serves HTTP/2 (prior knowledge) connections, calling Handler for each request
// stream on a goroutine of its own.
type Server struct {
	// Handler answers requests. Panicking with http.ErrAbortHandler resets the stream.
	Handler http.Handler
	// MaxConcurrentStreams is announced to clients (default 1000).
	MaxConcurrentStreams uint32
	// Log receives connection errors at debug level; nil discards them.
	Log *slog.Logger
}

// ServeConn serves c until the client closes it, a protocol error occurs or ctx ends; the
// client's connection preface must not have been consumed. Requests' contexts derive
// from ctx. It closes c before returning.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	defer c.Close()
	c.SetDeadline(time.Time{}) // clear what protocol detection may have set
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return fmt.Errorf("h2: bad client preface: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sc := &serverConn{srv: s, conn: c, w: newFrameWriter(c), ctx: ctx, streams: map[uint32]*serverStream{}}
	if a := c.RemoteAddr(); a != nil {
		sc.remote = a.String()
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	maxStreams := s.MaxConcurrentStreams
	if maxStreams == 0 {
		maxStreams = 1000
	}
	sc.w.lock()
	sc.w.err = sc.w.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: maxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxFrameRead},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList},
	)
	if sc.w.err == nil {
		sc.w.err = sc.w.fr.WriteWindowUpdate(0, connWindow-65535)
	}
	sc.w.unlock()
	err := sc.readLoop()
	sc.w.fail(errConnClosed)
	sc.mu.Lock()
	streams := sc.streams
	sc.streams = map[uint32]*serverStream{}
	sc.mu.Unlock()
	for _, st := range streams {
		st.abort(errConnClosed)
	}
	sc.wg.Wait()
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

type serverConn struct {
	srv    *Server
	conn   net.Conn
	w      *frameWriter
	ctx    context.Context
	credit connCredit
	wg     sync.WaitGroup
	remote string // the client's address, for requests' RemoteAddr

	mu      sync.Mutex
	streams map[uint32]*serverStream
	lastID  uint32
}

type serverStream struct {
	sc     *serverConn
	id     uint32
	body   recvPipe
	rw     responseWriter
	send   sendWindow // guarded by sc.w.mu
	cancel context.CancelFunc
	req    *http.Request
	done   bool // guarded by sc.mu: the handler finished
	ended  bool // guarded by sc.mu (written by the read loop): the client's side ended (END_STREAM)

	// trailer collects the values of the declared request trailers (nil when none were
	// declared). The read loop owns it until it closes the body with io.EOF; the body's
	// reader then owns it and publishes it into reqTrailer (the handler's
	// Request.Trailer), so that the map the handler and whatever it hands the request to
	// see is never written by another goroutine.
	trailer    http.Header
	reqTrailer http.Header
}

// credit acknowledges consumed request bytes (see recvPipe.credit).
func (st *serverStream) credit(conn, stream int) {
	sc := st.sc
	sc.creditConn(conn)
	if stream > 0 {
		sc.w.lock()
		if sc.w.err == nil {
			sc.w.err = sc.w.fr.WriteWindowUpdate(st.id, uint32(stream))
		}
		sc.w.unlock()
	}
}

func (st *serverStream) abort(err error) {
	n := st.body.discard(err)
	st.cancel()
	st.sc.w.lock()
	st.send.reset = true
	st.sc.w.cond.Broadcast()
	st.sc.w.unlock()
	st.sc.creditConn(n)
}

func (sc *serverConn) creditConn(n int) {
	if v := sc.credit.add(n); v > 0 {
		sc.w.lock()
		if sc.w.err == nil {
			sc.w.err = sc.w.fr.WriteWindowUpdate(0, uint32(v))
		}
		sc.w.unlock()
	}
}

func (sc *serverConn) goAway(code http2.ErrCode, why string) error {
	sc.w.lock()
	if sc.w.err == nil {
		sc.w.err = sc.w.fr.WriteGoAway(sc.lastID, code, []byte(why))
	}
	sc.w.unlock()
	return fmt.Errorf("h2: %s", why)
}

func (sc *serverConn) readLoop() error {
	fr := http2.NewFramer(nil, bufio.NewReaderSize(sc.conn, readBufSize))
	fr.SetMaxReadFrameSize(maxFrameRead)
	fr.MaxHeaderListSize = maxHeaderList
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	first := true
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				sc.resetStream(se.StreamID, se.Code)
				continue
			}
			return err
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				return sc.goAway(http2.ErrCodeProtocol, "first frame is not SETTINGS")
			}
			first = false
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if err := sc.onHeaders(f); err != nil {
				return err
			}
		case *http2.DataFrame:
			sc.onData(f)
		case *http2.SettingsFrame:
			if err := sc.onSettings(f); err != nil {
				return err
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				sc.w.lock()
				if sc.w.err == nil {
					sc.w.err = sc.w.fr.WritePing(true, f.Data)
				}
				sc.w.unlock()
			}
		case *http2.WindowUpdateFrame:
			sc.w.lock()
			if f.StreamID == 0 {
				sc.w.connSend += int64(f.Increment)
			} else if st := sc.stream(f.StreamID); st != nil {
				st.send.window += int64(f.Increment)
			}
			sc.w.cond.Broadcast()
			sc.w.unlock()
		case *http2.RSTStreamFrame:
			if st := sc.remove(f.StreamID); st != nil {
				st.abort(errStreamReset)
			}
		case *http2.GoAwayFrame:
			return io.EOF
		case *http2.PushPromiseFrame:
			return sc.goAway(http2.ErrCodeProtocol, "client sent PUSH_PROMISE")
		}
	}
}

func (sc *serverConn) stream(id uint32) *serverStream {
	sc.mu.Lock()
	st := sc.streams[id]
	sc.mu.Unlock()
	return st
}

func (sc *serverConn) remove(id uint32) *serverStream {
	sc.mu.Lock()
	st := sc.streams[id]
	delete(sc.streams, id)
	sc.mu.Unlock()
	return st
}

func (sc *serverConn) resetStream(id uint32, code http2.ErrCode) {
	if st := sc.remove(id); st != nil {
		st.abort(errStreamReset)
	}
	sc.w.lock()
	if sc.w.err == nil {
		sc.w.err = sc.w.fr.WriteRSTStream(id, code)
	}
	sc.w.unlock()
}

func (sc *serverConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	sc.w.lock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			if s.Val > 1<<31-1 {
				return errors.New("initial window too large")
			}
			delta := int64(s.Val) - int64(sc.w.initialWindow)
			sc.w.initialWindow = int32(s.Val)
			sc.mu.Lock()
			for _, st := range sc.streams {
				st.send.window += delta
			}
			sc.mu.Unlock()
		case http2.SettingMaxFrameSize:
			sc.w.maxFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			sc.w.henc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err == nil && sc.w.err == nil {
		sc.w.err = sc.w.fr.WriteSettingsAck()
	}
	sc.w.cond.Broadcast()
	sc.w.unlock()
	if err != nil {
		return sc.goAway(http2.ErrCodeFlowControl, err.Error())
	}
	return nil
}

func (sc *serverConn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if st := sc.stream(id); st != nil {
		sc.onTrailers(st, f)
		return nil
	}
	if id%2 == 0 || id <= sc.lastID {
		return sc.goAway(http2.ErrCodeProtocol, fmt.Sprintf("bad stream id %d", id))
	}
	sc.lastID = id
	req, err := sc.newRequest(f)
	if err != nil {
		sc.resetStream(id, http2.ErrCodeProtocol)
		return nil
	}
	ctx, cancel := context.WithCancel(sc.ctx)
	st := &serverStream{sc: sc, id: id, cancel: cancel}
	st.body.init(st)
	sc.w.lock()
	st.send.window = int64(sc.w.initialWindow)
	sc.w.unlock()
	if f.StreamEnded() {
		req.Body = http.NoBody
		req.ContentLength = 0
		st.body.close(io.EOF)
		st.ended = true
	} else {
		req.Body = &requestBody{st: st}
	}
	if req.Trailer != nil {
		st.reqTrailer = req.Trailer
		st.trailer = make(http.Header, len(req.Trailer))
		for k := range req.Trailer {
			st.trailer[k] = nil
		}
	}
	st.req = req.WithContext(ctx)
	sc.mu.Lock()
	sc.streams[id] = st
	sc.mu.Unlock()
	sc.wg.Add(1)
	go st.run()
	return nil
}

// onTrailers handles a HEADERS frame on an open stream: the request's trailers, which
// end its body. Their values are kept for the body's reader (see serverStream.trailer);
// only declared names are kept, as net/http does. A malformed trailer block resets the
// stream with PROTOCOL_ERROR, and HEADERS after the client's END_STREAM with
// STREAM_CLOSED (RFC 9113 sections 5.1 and 8.1).
func (sc *serverConn) onTrailers(st *serverStream, f *http2.MetaHeadersFrame) {
	if st.ended {
		sc.resetStream(st.id, http2.ErrCodeStreamClosed)
		return
	}
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
		sc.resetStream(st.id, http2.ErrCodeProtocol)
		return
	}
	for _, hf := range f.RegularFields() {
		k := canonicalKey(hf.Name)
		if !httpguts.ValidTrailerHeader(k) {
			sc.resetStream(st.id, http2.ErrCodeProtocol)
			return
		}
		if vv, declared := st.trailer[k]; declared {
			st.trailer[k] = append(vv, hf.Value)
		}
	}
	sc.endClientSide(st)
}

// publishTrailers copies the received trailer values into the handler's Request.Trailer.
// It runs on the goroutine that read the body's io.EOF, after the read loop let go of
// st.trailer (the body's lock orders the two).
func (st *serverStream) publishTrailers() {
	t := st.trailer
	st.trailer = nil
	for k, vv := range t {
		if _, ok := st.reqTrailer[k]; ok && vv != nil {
			st.reqTrailer[k] = vv
		}
	}
}

// endClientSide marks the client's side of st ended and ends its body. The stream is
// marked first, so that a handler finishing on the body's io.EOF finds it ended.
func (sc *serverConn) endClientSide(st *serverStream) {
	sc.mu.Lock()
	st.ended = true
	if st.done {
		delete(sc.streams, st.id)
	}
	sc.mu.Unlock()
	st.body.close(io.EOF)
}

func (sc *serverConn) onData(f *http2.DataFrame) {
	st := sc.stream(f.StreamID)
	data := f.Data()
	padding := int(f.Length) - len(data)
	if st == nil {
		// A stream already finished or reset: its bytes still count against the
		// connection window.
		sc.creditConn(int(f.Length))
		return
	}
	if padding > 0 {
		sc.creditConn(padding)
	}
	if len(data) > 0 && !st.body.push(data) {
		sc.creditConn(len(data))
	}
	if f.StreamEnded() {
		sc.endClientSide(st)
	}
}

// newRequest builds the http.Request of a HEADERS frame.
func (sc *serverConn) newRequest(f *http2.MetaHeadersFrame) (*http.Request, error) {
	var method, scheme, authority, path string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":authority":
			authority = hf.Value
		case ":path":
			path = hf.Value
		default:
			return nil, fmt.Errorf("unknown pseudo-header %s", hf.Name)
		}
	}
	if method == "" || (method != "CONNECT" && path == "") {
		return nil, errors.New("missing :method or :path")
	}
	header := fieldsHeader(f.RegularFields())
	if authority == "" {
		authority = header.Get("Host")
	}
	u, err := url.ParseRequestURI(path)
	if err != nil && method != "CONNECT" {
		return nil, fmt.Errorf("bad :path: %w", err)
	}
	if u == nil {
		u = &url.URL{}
	}
	u.Scheme, u.Host = scheme, authority
	cl := int64(-1)
	if v := header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			cl = n
		}
	}
	// Declared trailers are known before the body, as net/http presents them.
	var trailer http.Header // made when trailers are declared or arrive
	for _, k := range declaredTrailers(header["Trailer"]) {
		if trailer == nil {
			trailer = http.Header{}
		}
		trailer[k] = nil
	}
	delete(header, "Trailer")
	return &http.Request{
		Method: method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2, Header: header,
		Host: authority, RequestURI: path, RemoteAddr: sc.remote,
		ContentLength: cl, Trailer: trailer,
	}, nil
}

// requestBody is a stream's request body as the handler sees it.
type requestBody struct{ st *serverStream }

// Read reads the body; the read that returns io.EOF first publishes the request's
// trailers (see serverStream.trailer).
func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.st.body.Read(p)
	if err == io.EOF && b.st.trailer != nil {
		b.st.publishTrailers()
	}
	return n, err
}

// Close stops reading; bytes still arriving are dropped and credited back.
func (b *requestBody) Close() error {
	b.st.sc.creditConn(b.st.body.discard(errBodyClosed))
	return nil
}

var errBodyClosed = errors.New("h2: request body closed")

// run calls the handler and finishes the response.
func (st *serverStream) run() {
	sc := st.sc
	defer sc.wg.Done()
	rw := &st.rw
	rw.st, rw.header = st, http.Header{}
	aborted := false
	func() {
		defer func() {
			if p := recover(); p != nil {
				aborted = true
				if p != http.ErrAbortHandler && sc.srv.Log != nil {
					sc.srv.Log.Error("h2: handler panic", "panic", p)
				}
			}
		}()
		sc.srv.Handler.ServeHTTP(rw, st.req)
	}()
	if aborted {
		sc.resetStream(st.id, http2.ErrCodeInternal)
		return
	}
	rw.finish()
	sc.mu.Lock()
	st.done = true
	ended := st.ended
	_, live := sc.streams[st.id]
	if ended {
		delete(sc.streams, st.id)
	}
	sc.mu.Unlock()
	if !ended && live {
		// The response is complete but the client is still sending: it may stop.
		sc.resetStream(st.id, http2.ErrCodeNo)
	}
	st.cancel()
}

// responseWriter writes a stream's response. Body bytes are buffered until the handler
// flushes, fills the buffer or returns, so that small responses go out as one HEADERS and
// one DATA frame in a single write.
type responseWriter struct {
	st          *serverStream
	header      http.Header
	status      int
	headersSent bool
	buf         []byte
	err         error
}

func (rw *responseWriter) Header() http.Header { return rw.header }

func (rw *responseWriter) WriteHeader(code int) {
	if rw.status != 0 || code < 200 {
		return // interim responses are not forwarded; the first final status wins
	}
	rw.status = code
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.err != nil {
		return 0, rw.err
	}
	if len(rw.buf)+len(p) <= 16<<10 {
		rw.buf = append(rw.buf, p...)
		return len(p), nil
	}
	if err := rw.send(p, false, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush sends the headers and buffered body now.
func (rw *responseWriter) Flush() {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	rw.send(nil, false, true)
}

// send writes headers (once), buffered data and p; endStream ends the stream after them.
func (rw *responseWriter) send(p []byte, endStream, flushOnly bool) error {
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
	noBody := len(rw.buf) == 0 && len(p) == 0
	if !rw.headersSent {
		rw.headersSent = true
		declared := rw.header["Trailer"]
		w.headers(st.id, endStream && noBody, func(enc func(string, string)) {
			enc(":status", strconv.Itoa(rw.status))
			if len(declared) == 0 {
				writeHeaderFields(enc, rw.header)
				return
			}
			h := rw.header.Clone() // trailers the handler declared go at the end
			names := declaredTrailers(declared)
			for _, k := range names {
				delete(h, k)
			}
			writeHeaderFields(enc, h)
			enc("trailer", strings.ToLower(strings.Join(names, ",")))
		})
		if endStream && noBody {
			rw.err = w.err
			return rw.err
		}
	}
	if len(rw.buf) > 0 {
		if err := w.data(st.id, &st.send, rw.buf, endStream && len(p) == 0); err != nil {
			rw.err = err
			return err
		}
		rw.buf = rw.buf[:0]
	}
	if len(p) > 0 || (endStream && noBody) {
		if err := w.data(st.id, &st.send, p, endStream); err != nil {
			rw.err = err
			return err
		}
	}
	if flushOnly && w.err == nil && w.bw.Buffered() > 0 && w.waiting.Load() == 0 {
		w.err = w.bw.Flush()
	}
	return w.err
}

// finish completes the response: headers, remaining body, and trailers if the handler set
// any (keys prefixed with http.TrailerPrefix or declared in a Trailer field).
func (rw *responseWriter) finish() {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	trailers := rw.trailers()
	if len(trailers) == 0 {
		rw.send(nil, true, false)
		return
	}
	if rw.send(nil, false, false) != nil {
		return
	}
	w := rw.st.sc.w
	w.lock()
	if !rw.st.send.reset {
		w.headers(rw.st.id, true, func(enc func(string, string)) { writeHeaderFields(enc, trailers) })
	}
	w.unlock()
}

func (rw *responseWriter) trailers() http.Header {
	var t http.Header
	for k, vv := range rw.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = http.Header{}
			}
			t[http.CanonicalHeaderKey(name)] = vv
		}
	}
	for _, k := range declaredTrailers(rw.header["Trailer"]) {
		if vv, ok := rw.header[k]; ok {
			if t == nil {
				t = http.Header{}
			}
			t[k] = vv
		}
	}
	return t
}

// declaredTrailers lists the field names of Trailer declarations.
func declaredTrailers(decls []string) []string {
	var out []string
	for _, decl := range decls {
		for _, k := range strings.Split(decl, ",") {
			if k = strings.TrimSpace(k); k != "" {
				out = append(out, http.CanonicalHeaderKey(k))
			}
		}
	}
	return out
}
