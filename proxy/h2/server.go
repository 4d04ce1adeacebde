package h2

import (
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
// stream on a goroutine of its own. Those goroutines are kept for later streams (of any
// connection) for a few seconds once their handler returned, so that a busy server does
// not start, grow the stack of and end a goroutine per request.
//
// It keeps the protections of golang.org/x/net/http2's server against hostile clients:
// receive windows are enforced (FLOW_CONTROL_ERROR), streams beyond the announced
// MaxConcurrentStreams are refused (REFUSED_STREAM), at most MaxConcurrentStreams
// handlers run at once with a bounded queue behind them, streams reset before their
// handler started never run it, resets beyond a budget (rapid reset, CVE-2023-44487) and
// an overflowing handler queue close the connection with ENHANCE_YOUR_CALM, SETTINGS and
// WINDOW_UPDATE values are validated, the header list is bounded (CONTINUATION floods,
// CVE-2023-45288), malformed requests (connection-specific fields, bad Content-Length)
// are refused, and idle connections are closed.
type Server struct {
	// Handler answers requests. Panicking with http.ErrAbortHandler resets the stream.
	Handler http.Handler
	// MaxConcurrentStreams is announced to clients and enforced (default 1000).
	MaxConcurrentStreams uint32
	// IdleTimeout closes a connection, with GOAWAY, once it has had no open stream for
	// between IdleTimeout and twice that (default 90s; negative: never).
	IdleTimeout time.Duration
	// Log receives connection errors at debug level; nil discards them.
	Log *slog.Logger

	workOnce sync.Once
	// work hands streams to idle handler goroutines (see spawn).
	work chan *serverStream
}

// handlerIdle is how long a handler goroutine waits for another stream before it ends.
const handlerIdle = 5 * time.Second

// spawn runs st on an idle handler goroutine, or on a new one when none is waiting.
func (s *Server) spawn(st *serverStream) {
	s.workOnce.Do(func() { s.work = make(chan *serverStream) })
	select {
	case s.work <- st:
	default:
		go s.handle(st)
	}
}

// handle runs st, then the streams spawn hands it, until none came for handlerIdle.
func (s *Server) handle(st *serverStream) {
	var idle *time.Timer
	for {
		st.run()
		st = nil // nothing of the finished stream stays reachable from a waiting goroutine
		if idle == nil {
			idle = time.NewTimer(handlerIdle)
		} else {
			idle.Reset(handlerIdle)
		}
		select {
		case st = <-s.work:
		case <-idle.C:
			return
		}
	}
}

const (
	// defaultIdleTimeout is Server.IdleTimeout's default, the HTTP/1 fast path's.
	defaultIdleTimeout = 90 * time.Second
	// prefaceTimeout bounds the wait for the client's connection preface.
	prefaceTimeout = 10 * time.Second
	// queuedHandlersPerStream: a connection may have this many times MaxConcurrentStreams
	// handlers waiting for a slot (streams whose earlier handlers still run after their
	// streams were reset) before it is closed with ENHANCE_YOUR_CALM, as x/net/http2 does.
	queuedHandlersPerStream = 4
	// goAwayGrace is how long an idle connection stays open after its GOAWAY, so that
	// the client reads it before the connection closes.
	goAwayGrace = time.Second
	// resetRefillPerSecond is how fast the reset budget (MaxConcurrentStreams streams
	// reset before their response completed) refills besides one per completed response.
	resetRefillPerSecond = 100
)

// errCalm is returned when a client is closed for abusing resets or the handler queue.
var errCalm = errors.New("h2: too many streams reset before their response (rapid reset) or waiting for a handler")

// ServeConn serves c until the client closes it, a protocol error occurs or ctx ends; the
// client's connection preface must not have been consumed. Requests' contexts carry
// ctx's values; they are cancelled when their stream ends, and ctx ending closes the
// connection, which ends every stream. It closes c before returning.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	defer c.Close()
	c.SetDeadline(time.Now().Add(prefaceTimeout)) // replaces what protocol detection set
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return fmt.Errorf("h2: bad client preface: %v", err)
	}
	c.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	maxStreams := s.MaxConcurrentStreams
	if maxStreams == 0 {
		maxStreams = 1000
	}
	// Streams' contexts are not children of ctx: each stream is cancelled on its own
	// (abort, or its end in run), and at the connection's end every open stream is
	// aborted, so registering each with ctx would only cost two locked map updates of
	// the connection's context per stream.
	sc := &serverConn{srv: s, conn: c, w: newFrameWriter(c), ctx: context.WithoutCancel(ctx), streams: map[uint32]*serverStream{},
		maxStreams: maxStreams, unackedSettings: 1, resetTokens: int(maxStreams), refilled: time.Now()}
	sc.inflow.give(connWindow)
	if a := c.RemoteAddr(); a != nil {
		sc.remote = a.String()
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
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
	if idle := s.IdleTimeout; idle >= 0 {
		if idle == 0 {
			idle = defaultIdleTimeout
		}
		t := sc.closeWhenIdle(idle)
		defer t.Stop()
	}
	err := sc.readLoop()
	sc.w.fail(errConnClosed)
	sc.mu.Lock()
	streams := sc.streams
	sc.streams = map[uint32]*serverStream{}
	sc.queue = nil
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
	srv        *Server
	conn       net.Conn
	w          *frameWriter
	ctx        context.Context // the parent of streams' contexts: ServeConn's ctx without its cancellation
	credit     connCredit
	inflow     inflow // what the client may still send on the connection
	wg         sync.WaitGroup
	remote     string // the client's address, for requests' RemoteAddr
	maxStreams uint32

	// Used by the read loop only.
	unackedSettings int

	mu       sync.Mutex
	streams  map[uint32]*serverStream
	lastID   uint32 // written by the read loop
	handlers int    // handlers running
	// queue holds streams waiting for a handler slot; those reset meanwhile are skipped.
	queue []*serverStream
	// resetTokens is the reset budget: a stream the client resets (or makes us reset)
	// before its response completed takes one; a completed response and the passing of
	// time (resetRefillPerSecond) give them back, up to maxStreams.
	resetTokens int
	refilled    time.Time
	// draining is set once GOAWAY was sent to an idle connection: streams the client
	// opens later are ignored (it retries them on another connection).
	draining bool
}

type serverStream struct {
	sc     *serverConn
	id     uint32
	body   recvPipe
	inflow inflow // what the client may still send on the stream
	rw     responseWriter
	send   sendWindow // guarded by sc.w.mu
	cancel context.CancelFunc
	req    *http.Request
	url    url.URL // req.URL
	// slots hold the values of req.Header when it has at most as many fields.
	slots [headerSlots]string
	// fields are the request's regular header fields as decoded, in fieldBuf when they
	// fit; the handler's goroutine builds req.Header from them (see run).
	fields   []hpack.HeaderField
	fieldBuf [headerSlots]hpack.HeaderField
	// reqBody is the request's Body when the request has one.
	reqBody requestBody
	done    bool // guarded by sc.mu: the response is complete
	// hasBody: the request did not end with its HEADERS.
	hasBody bool
	// unfinished is set (under sc.mu) when the response completed while the client was
	// still sending: the stream is then reset with NO_ERROR (RFC 9113 section 8.1).
	unfinished bool
	ended      bool // guarded by sc.mu (written by the read loop): the client's side ended (END_STREAM)
	// reject, when non-zero, is the status answered instead of calling the handler (a
	// malformed request, x/net/http2's 400 and 431).
	reject int

	// Used by the read loop only: the declared Content-Length (-1: none) and the body
	// bytes received, which must match it.
	declared, received int64

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
		st.inflow.give(int64(stream))
		sc.w.lockControl()
		if sc.w.err == nil {
			sc.w.err = sc.w.fr.WriteWindowUpdate(st.id, uint32(stream))
		}
		sc.w.unlock()
	}
}

func (st *serverStream) abort(err error) {
	n := st.body.discard(err)
	st.cancel()
	st.sc.w.lockState()
	st.send.reset = true
	st.sc.w.cond.Broadcast()
	st.sc.w.unlockState()
	st.sc.creditConn(n)
}

func (sc *serverConn) creditConn(n int) {
	if v := sc.credit.add(n); v > 0 {
		sc.inflow.give(v)
		sc.w.lockControl()
		if sc.w.err == nil {
			sc.w.err = sc.w.fr.WriteWindowUpdate(0, uint32(v))
		}
		sc.w.unlock()
	}
}

// goAway sends GOAWAY with code and returns the error ending the connection.
func (sc *serverConn) goAway(code http2.ErrCode, why string) error {
	sc.mu.Lock()
	last := sc.lastID
	sc.mu.Unlock()
	sc.w.lock()
	if sc.w.err == nil {
		sc.w.err = sc.w.fr.WriteGoAway(last, code, []byte(why))
		sc.w.syncLocked()
	}
	sc.w.unlock()
	return fmt.Errorf("h2: %s (GOAWAY %v)", why, code)
}

// closeWhenIdle starts the idle timer: every idle period, a connection that had no open
// stream nor new one since the last check is sent GOAWAY (NO_ERROR) and closed
// goAwayGrace later; streams opened meanwhile are ignored. No per-request work.
func (sc *serverConn) closeWhenIdle(idle time.Duration) *time.Timer {
	seen := uint32(0)
	var t *time.Timer
	t = time.AfterFunc(idle, func() {
		sc.mu.Lock()
		busy := len(sc.streams) > 0 || sc.handlers > 0 || sc.lastID != seen
		seen = sc.lastID
		sc.draining = sc.draining || !busy
		sc.mu.Unlock()
		if busy {
			t.Reset(idle)
			return
		}
		sc.goAway(http2.ErrCodeNo, "idle connection")
		time.AfterFunc(goAwayGrace, func() { sc.conn.Close() }) // harmless once closed
	})
	return t
}

func (sc *serverConn) readLoop() error {
	in := newFrameIn(sc.conn)
	fr := in.fr
	hr := newHeaderReader(fr)
	first := true
	for {
		f, d, err := in.next()
		if d != nil {
			if first {
				d.release()
				return sc.goAway(http2.ErrCodeProtocol, "first frame is not SETTINGS")
			}
			err := sc.onData(d)
			d.release()
			if err != nil {
				return err
			}
			continue
		}
		var hb *headerBlock
		if hf, ok := f.(*http2.HeadersFrame); ok && err == nil {
			hb, err = hr.read(hf)
		}
		if err != nil {
			var se http2.StreamError
			var ce http2.ConnectionError
			switch {
			case errors.As(err, &se):
				if id := se.StreamID; id%2 == 1 && id > sc.lastID {
					// A malformed request's HEADERS: the stream exists (and is closed).
					sc.mu.Lock()
					sc.lastID = id
					sc.mu.Unlock()
				}
				if !sc.refuse(se.StreamID, se.Code) {
					return sc.goAway(http2.ErrCodeEnhanceYourCalm, errCalm.Error())
				}
				continue
			case errors.As(err, &ce):
				return sc.goAway(http2.ErrCode(ce), fmt.Sprintf("reading frame: %v", err))
			case errors.Is(err, http2.ErrFrameTooLarge):
				return sc.goAway(http2.ErrCodeFrameSize, "frame too large")
			}
			return err
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				return sc.goAway(http2.ErrCodeProtocol, "first frame is not SETTINGS")
			}
			first = false
		}
		if hb != nil {
			err := sc.onHeaders(hb)
			hr.release()
			if err != nil {
				return err
			}
			continue
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if err := sc.onSettings(f); err != nil {
				return err
			}
		case *http2.PingFrame:
			// Answered synchronously: a client that does not read its acknowledgements
			// stalls its own connection's read loop rather than queueing them (x/net
			// closes the connection past 10,000 queued control frames).
			if !f.IsAck() {
				sc.w.lockControl()
				if sc.w.err == nil {
					sc.w.err = sc.w.fr.WritePing(true, f.Data)
				}
				sc.w.unlock()
			}
		case *http2.WindowUpdateFrame:
			if err := sc.onWindowUpdate(f); err != nil {
				return err
			}
		case *http2.RSTStreamFrame:
			if sc.idle(f.StreamID) {
				return sc.goAway(http2.ErrCodeProtocol, "RST_STREAM on an idle stream")
			}
			if st := sc.remove(f.StreamID); st != nil {
				st.abort(errStreamReset)
				if !sc.earlyReset(st) {
					return sc.goAway(http2.ErrCodeEnhanceYourCalm, errCalm.Error())
				}
			}
		case *http2.GoAwayFrame:
			return io.EOF
		case *http2.PushPromiseFrame:
			return sc.goAway(http2.ErrCodeProtocol, "client sent PUSH_PROMISE")
		}
	}
}

// idle reports whether stream id was never opened by the client (RFC 9113 section 5.1:
// frames other than HEADERS and PRIORITY on it are a connection error). Read loop only.
func (sc *serverConn) idle(id uint32) bool { return id > sc.lastID }

// earlyReset takes a token from the reset budget for st, reset before its response
// completed, and reports whether the client is still within budget.
func (sc *serverConn) earlyReset(st *serverStream) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st.done {
		return true
	}
	sc.resetTokens--
	if sc.resetTokens >= 0 {
		return true
	}
	now := time.Now()
	if n := int(now.Sub(sc.refilled) * resetRefillPerSecond / time.Second); n > 0 {
		sc.resetTokens = min(sc.resetTokens+n, int(sc.maxStreams))
		sc.refilled = now
	}
	return sc.resetTokens >= 0
}

func (sc *serverConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	if f.StreamID == 0 {
		sc.w.lockState()
		overflow := sc.w.connSend+int64(f.Increment) > maxWindow
		if !overflow {
			sc.w.connSend += int64(f.Increment)
			sc.w.cond.Broadcast()
		}
		sc.w.unlockState()
		if overflow {
			return sc.goAway(http2.ErrCodeFlowControl, "connection send window above 2^31-1")
		}
		return nil
	}
	if sc.idle(f.StreamID) {
		return sc.goAway(http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream")
	}
	st := sc.stream(f.StreamID)
	if st == nil {
		return nil // a closed stream: allowed
	}
	sc.w.lockState()
	overflow := st.send.window+int64(f.Increment) > maxWindow
	if !overflow {
		st.send.window += int64(f.Increment)
		sc.w.cond.Broadcast()
	}
	sc.w.unlockState()
	if overflow && !sc.refuse(f.StreamID, http2.ErrCodeFlowControl) {
		return sc.goAway(http2.ErrCodeEnhanceYourCalm, errCalm.Error())
	}
	return nil
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

func (sc *serverConn) resetStream(id uint32, code http2.ErrCode) *serverStream {
	st := sc.remove(id)
	if st != nil {
		st.abort(errStreamReset)
	}
	sc.w.lockControl()
	if sc.w.err == nil {
		sc.w.err = sc.w.fr.WriteRSTStream(id, code)
	}
	sc.w.unlock()
	return st
}

// refuse resets stream id for the client's fault (a stream error). Such resets count
// against the reset budget like the client's own (a client could otherwise provoke them
// instead of sending RST_STREAM); it reports whether the client is within budget.
func (sc *serverConn) refuse(id uint32, code http2.ErrCode) bool {
	if st := sc.resetStream(id, code); st != nil {
		return sc.earlyReset(st)
	}
	return true
}

func (sc *serverConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		if sc.unackedSettings--; sc.unackedSettings < 0 {
			return sc.goAway(http2.ErrCodeProtocol, "SETTINGS acknowledged that were never sent")
		}
		return nil
	}
	if code, err := checkSettings(f); err != nil {
		return sc.goAway(code, err.Error())
	}
	sc.w.lockControl()
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(sc.w.initialWindow)
			sc.mu.Lock()
			defer sc.mu.Unlock()
			for _, st := range sc.streams {
				if st.send.window+delta > maxWindow {
					return errors.New("INITIAL_WINDOW_SIZE takes a stream window above 2^31-1")
				}
			}
			sc.w.initialWindow = int32(s.Val)
			for _, st := range sc.streams {
				st.send.window += delta
			}
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

func (sc *serverConn) onHeaders(f *headerBlock) error {
	id := f.StreamID
	if st := sc.stream(id); st != nil {
		if !sc.onTrailers(st, f) {
			return sc.goAway(http2.ErrCodeEnhanceYourCalm, errCalm.Error())
		}
		return nil
	}
	if id%2 == 0 || id <= sc.lastID {
		return sc.goAway(http2.ErrCodeProtocol, fmt.Sprintf("bad stream id %d", id))
	}
	sc.mu.Lock()
	sc.lastID = id
	full := len(sc.streams) >= int(sc.maxStreams)
	draining := sc.draining
	sc.mu.Unlock()
	if draining {
		return nil // after our GOAWAY: the client retries it on another connection
	}
	if full {
		// Over the announced limit (RFC 9113 section 5.1.2): the client may retry.
		sc.resetStream(id, http2.ErrCodeRefusedStream)
		return nil
	}
	// The request is built here and copied once into the one WithContext makes; its URL
	// is the stream's.
	var base http.Request
	req := &base
	st := &serverStream{sc: sc, id: id}
	if regular := f.RegularFields(); len(regular) <= len(st.fieldBuf) {
		st.fields = st.fieldBuf[:copy(st.fieldBuf[:], regular)]
	} else {
		st.fields = append([]hpack.HeaderField(nil), regular...)
	}
	reject, err := sc.newRequest(f, req, &st.url)
	if err != nil {
		sc.resetStream(id, http2.ErrCodeProtocol)
		return nil
	}
	ctx, cancel := context.WithCancel(sc.ctx)
	st.cancel, st.reject, st.declared, st.hasBody = cancel, reject, req.ContentLength, !f.StreamEnded()
	st.body.init(st)
	st.inflow.give(streamWindow)
	sc.w.lockState()
	st.send.window = int64(sc.w.initialWindow)
	sc.w.unlockState()
	if f.StreamEnded() {
		req.Body = http.NoBody
		req.ContentLength = 0
		st.body.close(io.EOF)
		st.ended = true
	} else {
		st.reqBody.st = st
		req.Body = &st.reqBody
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
	start := sc.handlers < int(sc.maxStreams)
	overflow := false
	if start {
		sc.handlers++
		sc.w.streams.Add(1)
	} else if overflow = len(sc.queue) >= queuedHandlersPerStream*int(sc.maxStreams); !overflow {
		sc.queue = append(sc.queue, st)
	}
	sc.mu.Unlock()
	if overflow {
		return sc.goAway(http2.ErrCodeEnhanceYourCalm, errCalm.Error())
	}
	if start {
		sc.wg.Add(1)
		sc.srv.spawn(st)
	}
	return nil
}

// handlerDoneLocked frees a finished handler's slot and starts the next queued stream
// still open, if any. The caller holds sc.mu.
func (sc *serverConn) handlerDoneLocked() {
	sc.handlers--
	sc.w.streams.Add(-1)
	var next *serverStream
	for len(sc.queue) > 0 && next == nil {
		st := sc.queue[0]
		sc.queue[0] = nil
		sc.queue = sc.queue[1:]
		if sc.streams[st.id] == st {
			next = st
			sc.handlers++
			sc.w.streams.Add(1)
		}
	}
	if len(sc.queue) == 0 {
		sc.queue = nil
	}
	if next != nil {
		sc.wg.Add(1)
		sc.srv.spawn(next)
	}
}

// onTrailers handles a HEADERS frame on an open stream: the request's trailers, which
// end its body. Their values are kept for the body's reader (see serverStream.trailer);
// only declared names are kept, as net/http does. A malformed trailer block resets the
// stream with PROTOCOL_ERROR, and HEADERS after the client's END_STREAM with
// STREAM_CLOSED (RFC 9113 sections 5.1 and 8.1). It reports whether the client is
// within its reset budget.
func (sc *serverConn) onTrailers(st *serverStream, f *headerBlock) bool {
	if st.ended {
		return sc.refuse(st.id, http2.ErrCodeStreamClosed)
	}
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 || f.Truncated {
		return sc.refuse(st.id, http2.ErrCodeProtocol)
	}
	for _, hf := range f.RegularFields() {
		k := canonicalKey(hf.Name)
		if !httpguts.ValidTrailerHeader(k) {
			return sc.refuse(st.id, http2.ErrCodeProtocol)
		}
		if vv, declared := st.trailer[k]; declared {
			st.trailer[k] = append(vv, hf.Value)
		}
	}
	if st.declared >= 0 && st.received != st.declared {
		return sc.refuse(st.id, http2.ErrCodeProtocol)
	}
	sc.endClientSide(st)
	return true
}

// publishTrailers copies the received trailer values into the handler's Request.Trailer.
// It runs on the goroutine that read the body's io.EOF, after the read loop let go of
// st.trailer (the body's lock orders the two). It is kept out of line: inlined, its map
// iterator would enlarge every body Read's frame (a deep call path on the handler's
// goroutine, whose stack then grows more often).
//
//go:noinline
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
	if st.done && sc.streams[st.id] == st {
		delete(sc.streams, st.id)
	}
	sc.mu.Unlock()
	st.body.close(io.EOF)
}

// responded marks st's response complete and forgets the stream (its handler has
// returned: responses end in finish). The caller holds the writer's lock and has written
// the response's last frame, which therefore cannot have reached the client: a client
// seeing END_STREAM may open a new stream at once, and this one must no longer count
// against the stream limit by then. Request data still arriving is dropped (and
// credited back) by onData; run resets the stream if the client was still sending.
func (sc *serverConn) responded(st *serverStream) {
	sc.mu.Lock()
	if !st.done {
		st.done = true
		if sc.streams[st.id] == st {
			delete(sc.streams, st.id)
			st.unfinished = !st.ended
		}
		sc.resetTokens = min(sc.resetTokens+1, int(sc.maxStreams))
	}
	sc.mu.Unlock()
}

// onData takes a DATA frame's length from the receive windows (a client exceeding the
// connection's gets FLOW_CONTROL_ERROR on the connection, a stream's on the stream) and
// queues its data for the stream's body (taking f's chunk).
func (sc *serverConn) onData(f *dataIn) error {
	id := f.StreamID
	if sc.idle(id) {
		return sc.goAway(http2.ErrCodeProtocol, "DATA on an idle stream")
	}
	if !sc.inflow.take(f.Length) {
		return sc.goAway(http2.ErrCodeFlowControl, "client exceeded the connection receive window")
	}
	st := sc.stream(id)
	if st == nil {
		// A stream already finished or reset: its bytes still count against the
		// connection window, which gets them back.
		sc.creditConn(int(f.Length))
		return nil
	}
	if st.ended || !st.inflow.take(f.Length) {
		sc.creditConn(int(f.Length))
		code := http2.ErrCodeFlowControl
		if st.ended {
			code = http2.ErrCodeStreamClosed
		}
		if !sc.refuse(id, code) {
			return sc.goAway(http2.ErrCodeEnhanceYourCalm, errCalm.Error())
		}
		return nil
	}
	data := f.data
	end := f.Flags.Has(http2.FlagDataEndStream)
	st.received += int64(len(data))
	if st.declared >= 0 && (st.received > st.declared || end && st.received != st.declared) {
		// The body does not match its Content-Length: malformed (RFC 9113 section 8.1.1).
		sc.creditConn(int(f.Length))
		if !sc.refuse(id, http2.ErrCodeProtocol) {
			return sc.goAway(http2.ErrCodeEnhanceYourCalm, errCalm.Error())
		}
		return nil
	}
	if padding := int(f.Length) - len(data); padding > 0 {
		sc.creditConn(padding)
		st.body.forgive(padding)
	}
	if len(data) > 0 && !st.body.push(f) {
		sc.creditConn(len(data))
	}
	if end {
		sc.endClientSide(st)
	}
	return nil
}

// newRequest builds the http.Request of a HEADERS frame in req and its URL in u, without
// its Header (see requestHeader). A request that cannot be built (bad pseudo-header fields
// or Content-Length) is an error, for a PROTOCOL_ERROR reset; reject is the status to
// answer one that is malformed in HTTP/2 terms instead of calling the handler, as
// x/net/http2 does: 431 when the header list was truncated at the announced
// SETTINGS_MAX_HEADER_LIST_SIZE, 400 for connection-specific fields.
func (sc *serverConn) newRequest(f *headerBlock, req *http.Request, u *url.URL) (reject int, err error) {
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
			return 0, fmt.Errorf("unknown pseudo-header %s", hf.Name)
		}
	}
	if method == "" || (method != "CONNECT" && path == "") {
		return 0, errors.New("missing :method or :path")
	}
	cl := int64(-1)
	host := ""
	var declared []string
	for _, hf := range f.RegularFields() {
		if connectionSpecific(hf.Name, hf.Value) {
			reject = http.StatusBadRequest
		}
		switch hf.Name {
		case "host":
			if host == "" {
				host = hf.Value
			}
		case "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || (cl >= 0 && n != cl) {
				return 0, fmt.Errorf("bad content-length %q", hf.Value)
			}
			cl = n
		case "trailer":
			declared = append(declared, hf.Value)
		}
	}
	if f.Truncated {
		reject = http.StatusRequestHeaderFieldsTooLarge
	}
	if authority == "" {
		authority = host
	}
	if err := parseRequestPath(path, u); err != nil && method != "CONNECT" {
		return 0, fmt.Errorf("bad :path: %w", err)
	}
	u.Scheme, u.Host = scheme, authority
	// Declared trailers are known before the body, as net/http presents them.
	var trailer http.Header // made when trailers are declared or arrive
	for _, k := range declaredTrailers(declared) {
		if trailer == nil {
			trailer = http.Header{}
		}
		trailer[k] = nil
	}
	*req = http.Request{
		Method: method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2,
		Host: authority, RequestURI: path, RemoteAddr: sc.remote,
		ContentLength: cl, Trailer: trailer,
	}
	return reject, nil
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

// WriteTo writes the body to w until its end (a nil error, the declared trailers then
// set as after Read's io.EOF) or an error, large DATA straight from the buffers it
// arrived in (see recvPipe.writeTo).
func (b *requestBody) WriteTo(w io.Writer) (int64, error) { return b.WriteNTo(w, -1) }

// WriteNTo is WriteTo that returns, with a nil error, once n bytes are written (n below 0:
// no limit), without waiting for the end of the stream: a relay of a body of declared
// length goes on to the response as soon as that length is sent, as a Read loop would.
// Fewer bytes and a nil error mean that the body ended early.
func (b *requestBody) WriteNTo(w io.Writer, n int64) (int64, error) {
	written, err := b.st.body.writeTo(w, n)
	if err == io.EOF {
		if b.st.trailer != nil {
			b.st.publishTrailers()
		}
		err = nil
	}
	return written, err
}

// Close stops reading; bytes still arriving are dropped and credited back.
func (b *requestBody) Close() error {
	b.st.sc.creditConn(b.st.body.discard(errBodyClosed))
	return nil
}

var errBodyClosed = errors.New("h2: request body closed")

// run calls the handler (or answers a rejected request) and finishes the response; then
// it hands its handler slot to the next queued stream.
func (st *serverStream) run() {
	sc := st.sc
	defer sc.wg.Done()
	if st.req.Context().Err() != nil {
		// Reset, or the connection ended, before the handler started: it never runs, so
		// a rapid reset costs no handler call.
		sc.mu.Lock()
		sc.handlerDoneLocked()
		sc.mu.Unlock()
		return
	}
	rw := &st.rw
	rw.st = st
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
		if st.reject != 0 {
			http.Error(rw, http.StatusText(st.reject), st.reject)
			return
		}
		if fh, ok := sc.srv.Handler.(FieldsHandler); ok && fh.ServeFields(rw, st.req, st.fields) {
			return
		}
		st.req.Header = requestHeader(st.fields, st.slots[:])
		sc.srv.Handler.ServeHTTP(rw, st.req)
	}()
	if aborted {
		rw.release()
		sc.resetStream(st.id, http2.ErrCodeInternal)
		sc.mu.Lock()
		sc.handlerDoneLocked()
		sc.mu.Unlock()
		st.cancel()
		return
	}
	rw.finish()
	rw.release()
	sc.mu.Lock()
	live := sc.streams[st.id] == st // the response did not complete (write error, reset)
	if live {
		delete(sc.streams, st.id)
	}
	reset := (live && !st.ended) || st.unfinished
	sc.handlerDoneLocked()
	sc.mu.Unlock()
	st.cancel()
	if st.hasBody {
		// Body bytes the handler left unread are credited back to the connection.
		sc.creditConn(st.body.discard(errBodyClosed))
	}
	if reset {
		// The response is over but the client is still sending: it may stop. Its
		// unread body is credited back to the connection.
		st.abort(errStreamReset)
		sc.w.lock()
		if sc.w.err == nil {
			sc.w.err = sc.w.fr.WriteRSTStream(st.id, http2.ErrCodeNo)
		}
		sc.w.unlock()
	}
}

// responseWriter writes a stream's response. Body bytes are buffered until the handler
// flushes, fills the buffer or returns, so that small responses go out as one HEADERS and
// one DATA frame in a single write. The buffer is a pooled chunk (chunkPool), taken at the
// first body byte and given back once the handler has returned: a response body costs no
// allocation of its size (nor the growth of a slice up to it).
type responseWriter struct {
	st          *serverStream
	header      http.Header
	status      int
	headersSent bool
	buf         []byte
	pooled      *[chunkSize]byte // backs buf once body bytes were written
	err         error
	// ended is set once the stream's last frame was sent (WriteHead with end).
	ended bool
}

// release gives the body buffer back to the pool. The handler has returned: nothing
// writes to the response any more.
func (rw *responseWriter) release() {
	if rw.pooled != nil {
		chunkPool.Put(rw.pooled)
		rw.pooled, rw.buf = nil, nil
	}
}

// Header returns the response's header map, made on first use.
func (rw *responseWriter) Header() http.Header {
	if rw.header == nil {
		rw.header = http.Header{}
	}
	return rw.header
}

// AdoptHeader makes h the response's header map, as if the handler had set each of its
// fields, when Header was never called (nor the response started) and h is not nil; it
// reports whether it did. The handler hands h over: a proxy relaying a response whose
// header map it owns saves the copy.
func (rw *responseWriter) AdoptHeader(h http.Header) bool {
	if rw.header != nil || h == nil || rw.status != 0 || rw.headersSent {
		return false
	}
	rw.header = h
	return true
}

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
	if len(rw.buf)+len(p) <= chunkSize {
		if rw.pooled == nil && len(p) > 0 {
			rw.pooled = chunkPool.Get().(*[chunkSize]byte)
			rw.buf = rw.pooled[:0]
		}
		rw.buf = append(rw.buf, p...)
		return len(p), nil
	}
	if err := rw.send(p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush sends the headers and buffered body now.
func (rw *responseWriter) Flush() {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	rw.send(nil, false)
}

// send writes headers (once), buffered data and p; endStream ends the stream after them.
func (rw *responseWriter) send(p []byte, endStream bool) error {
	if rw.err != nil || rw.ended {
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
			enc(":status", statusString(rw.status))
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
			if rw.err = w.err; rw.err == nil {
				st.sc.responded(st)
			}
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
	if endStream && w.err == nil {
		st.sc.responded(st)
	}
	return w.err
}

// finish completes the response: headers, remaining body, and trailers if the handler set
// any (keys prefixed with http.TrailerPrefix or declared in a Trailer field).
func (rw *responseWriter) finish() {
	if rw.ended {
		return
	}
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	trailers := rw.trailers()
	if len(trailers) == 0 {
		rw.send(nil, true)
		return
	}
	if rw.send(nil, false) != nil {
		return
	}
	w := rw.st.sc.w
	w.lock()
	if !rw.st.send.reset {
		w.headers(rw.st.id, true, func(enc func(string, string)) { writeHeaderFields(enc, trailers) })
		if w.err == nil {
			rw.st.sc.responded(rw.st)
		}
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
