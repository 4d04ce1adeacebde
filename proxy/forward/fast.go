package forward

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/h1"
	"github.com/l5d-go/l5d/proxy/h2"
	"github.com/l5d-go/l5d/proxy/internal/relaybuf"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/routematch"
	"github.com/l5d-go/l5d/proxy/routes"
	"github.com/l5d-go/l5d/proxy/trace"
)

// clientIdleTimeout closes a client connection that sends no new request for this long,
// as the general HTTP server does.
const clientIdleTimeout = 90 * time.Second

// HeaderReadTimeout is how long a client has to send a whole request head once its
// first byte has arrived, on the fast path and in the general HTTP server
// (http.Server.ReadHeaderTimeout) alike.
const HeaderReadTimeout = 30 * time.Second

// BodyIdleTimeout abandons a request body that makes no progress for this long: the
// request fails and the client connection is closed.
const BodyIdleTimeout = 60 * time.Second

// idleDeadlineSlack is how stale the idle deadline may get before it is renewed: a
// connection idles between clientIdleTimeout-idleDeadlineSlack and clientIdleTimeout
// (parked or not: see parkAfter).
const idleDeadlineSlack = time.Second

// ServeHTTP1 serves an HTTP/1 client connection on the fast path: one goroutine reads each
// request with the lean codec, forwards it over a pooled HTTP/1 connection to the picked
// endpoint and relays the response, with no per-request goroutines or header maps.
//
// Requests the fast path leaves to the general handler (upgrades, Expect, HTTP/1.0,
// unusual framing, malformed heads, endpoints reached over HTTP/2) make it call fallback
// with the bytes read from conn but not yet handled and return; fallback must then serve
// the rest of the connection (through ServeHTTP). A request handed over after it was
// routed (outbound policy, a large body for an HTTP/2 endpoint) keeps that route: the
// general handler does not ask the Router again. Otherwise ServeHTTP1 closes conn when
// the client is done or ctx ends.
func (h *Handler) ServeHTTP1(ctx context.Context, conn net.Conn, ci *ConnInfo, fallback func(pending []byte)) {
	h.newFastConn(ctx, conn, ci, fallback).run()
}

// Parker is a client connection that can wait for its next request without a goroutine
// (see package accept). Park hands the connection, waiting for input with nothing
// unread, to a poller: ServeHTTP1 then returns, and the connection's server calls it
// again once input arrives or the peer hangs up, or closes the connection once the
// deadline passes or the listener shuts down. Nothing of the fast path is kept
// meanwhile. False means the connection cannot be parked (now or ever): its goroutine
// keeps waiting for it.
type Parker interface {
	Park(deadline time.Time) bool
}

// parkAfter is how long a connection with a Parker waits for its next request on its
// goroutine before it is parked: one busy with requests never is, and one opened in a
// burst of many gives its goroutine's stack back soon (the stacks of those still
// waiting are the peak of the memory they take). Its read deadline is renewed when it
// is parkSlack old, so that it is never in the past when a wait begins (and is renewed
// at most 50 times a second, a timer update, not one per request); the wait lasts
// between parkAfter-parkSlack and parkAfter. Resuming a parked connection costs a
// goroutine, its fast-path state made again and two epoll_ctl calls
// (BenchmarkParkedRequest in package accept).
const (
	parkAfter = 60 * time.Millisecond
	parkSlack = 20 * time.Millisecond
)

// run serves the connection on the calling goroutine until it ends (closed), goes to
// the general handler (fallback) or is parked. Its frame is kept small (see
// newFastConn): it is on the stack of a connection waiting for its next request.
func (s *fastConn) run() {
	for {
		// When ctx ends, a connection waiting for its next request is closed at once and
		// a busy one after its current response; a parked one is closed by its poller.
		stop := context.AfterFunc(s.ctx, s.stop)
		pending, idle := s.serve()
		stop()
		switch {
		case idle:
			if s.park() {
				return
			}
		case pending != nil:
			s.fallback(pending)
			return
		default:
			s.conn.Close()
			return
		}
	}
}

// park parks the connection once it has waited parkAfter for its next request, and
// reports whether it did (or closed it, idle for its whole idle timeout already); from
// then on the connection is the poller's, and s is garbage. Otherwise the wait goes on
// on the goroutine until the idle timeout.
//
//go:noinline
func (s *fastConn) park() bool {
	idleEnd := s.idleSince.Add(s.h.idleTimeout())
	if !time.Now().Before(idleEnd) {
		s.conn.Close() // the idle timeout is shorter than parkAfter
		return true
	}
	if s.parker.Park(idleEnd) {
		return true
	}
	// serve keeps this deadline: idleSince is the wait's start.
	s.parker = nil
	s.conn.SetReadDeadline(idleEnd)
	s.idleSince = time.Now()
	return false
}

// stop is run when the connection's context ends.
func (s *fastConn) stop() {
	s.stopping.Store(true)
	if s.idle.Load() {
		s.conn.SetReadDeadline(time.Now())
	}
}

// ServeHTTP2 serves an HTTP/2 (prior knowledge) connection with the lean HTTP/2 server,
// each stream through ServeHTTP, and closes conn when done.
func (h *Handler) ServeHTTP2(ctx context.Context, conn net.Conn, ci *ConnInfo) {
	srv := &h2.Server{Handler: h, Log: h.Log}
	if err := srv.ServeConn(WithConnInfo(ctx, ci), conn); err != nil && h.Log != nil {
		h.Log.Debug("HTTP/2 connection ended", "client", ci.Client, "error", err)
	}
}

// newFastConn returns the fast-path state of a new client connection. It is not inlined:
// the temporaries it builds stay out of ServeHTTP1's frame, which stays on the stack of
// a connection waiting for its next request (a small one lets the runtime shrink it).
//
//go:noinline
func (h *Handler) newFastConn(ctx context.Context, conn net.Conn, ci *ConnInfo, fallback func(pending []byte)) *fastConn {
	s := &fastConn{h: h, ctx: ctx, conn: conn, ci: ci, inbound: ci.inbound(), fallback: fallback}
	s.parker, _ = conn.(Parker)
	s.cr = h1.NewReader(conn)
	s.cw = h1.NewWriter(conn)
	s.cr.FlushBefore(s.cw, nil)
	s.cr.BeforeRead = s.beforeRead
	s.hr = (&http.Request{Header: http.Header{}, URL: &url.URL{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).WithContext(ctx)
	s.h2head.Fields = s.h2Fields
	return s
}

// fastConn is the state of one client connection on the fast path.
type fastConn struct {
	h    *Handler
	ctx  context.Context
	conn net.Conn
	ci   *ConnInfo
	cr   *h1.Reader
	cw   *h1.Writer
	req  h1.Head
	resp h1.Head
	// hr is the request handed to the Router, reused across requests; its strings are
	// kept while the client sends the same values.
	hr *http.Request
	// idle is true while waiting for the next request; stopping once ctx has ended.
	idle, stopping atomic.Bool
	// idleSince is when the idle deadline in force was set (zero: none is set).
	idleSince time.Time
	// rt is the profile route of the current request without timeout or retries, whose
	// metrics the request is recorded on; nil when there is none.
	rt *routes.Route
	// pm are the outbound policy series the current request is recorded on (its target's
	// default route, see PolicyRouter.DefaultMetrics); zero when there are none.
	pm policyMetrics
	// path is hr's path as route matching compares it (routematch.NormalizePath).
	path string
	// h2head is the request forwardH2 sends, kept across requests; h2all the string of
	// its fields (see h2Fields), h2scratch where they are assembled.
	h2head    h2.RequestHead
	h2all     string
	h2scratch []byte
	// inbound is set on connections to the inbound side (see ConnInfo.setClientID).
	inbound bool
	// fallback hands the connection to the general handler (see ServeHTTP1).
	fallback func(pending []byte)
	// parker, when set, takes the connection off its goroutine once it has waited
	// parkAfter for its next request; nil once a parking was refused.
	parker Parker
	// reading is what the client connection is being read for (readingHead,
	// readingBody); headTimed is set once the head being read has its deadline;
	// bodySince is when the body deadline in force was set.
	reading   int
	headTimed bool
	bodySince time.Time
}

const (
	readingHead = iota
	readingBody
)

// beforeRead runs before every read from the client (h1.Reader.BeforeRead): once part of
// a request head has arrived, the rest must come within HeaderReadTimeout; a request
// body must make progress at least every BodyIdleTimeout (the deadline is renewed at
// most once a second).
func (s *fastConn) beforeRead(buffered int) {
	if s.stopping.Load() {
		return // the deadline set on shutdown stays
	}
	switch s.reading {
	case readingHead:
		if buffered > 0 && !s.headTimed {
			s.headTimed = true
			s.conn.SetReadDeadline(time.Now().Add(s.h.headerReadTimeout()))
			s.idleSince = time.Time{}
		}
	case readingBody:
		if now := time.Now(); now.Sub(s.bodySince) > idleDeadlineSlack {
			s.conn.SetReadDeadline(now.Add(s.h.bodyIdleTimeout()))
			s.bodySince = now
		}
	}
}

// serve runs the request loop. It returns the unhandled bytes when the connection must
// continue on the general handler, idle when a connection with a Parker waited parkAfter
// for its next request without a byte of it arriving, or neither when it is finished.
func (s *fastConn) serve() (pending []byte, idle bool) {
	for {
		if len(s.cr.Buffered()) == 0 {
			s.idle.Store(true)
			// The idle deadline stays set across body-less requests (nothing is read
			// from the client while they are relayed) and is renewed once it is
			// idleDeadlineSlack old, so that most requests cost no timer update. With a
			// Parker it is the time to park (renewed once parkSlack old), and the idle
			// timeout is the parked connection's.
			wait, slack := s.h.idleTimeout(), idleDeadlineSlack
			if s.parker != nil {
				wait, slack = min(parkAfter, wait), parkSlack
			}
			if now := time.Now(); now.Sub(s.idleSince) > slack {
				s.conn.SetReadDeadline(now.Add(wait))
				s.idleSince = now
			}
			if s.stopping.Load() { // checked after the deadline is set: see run
				return nil, false
			}
		}
		s.reading, s.headTimed = readingHead, false
		err := s.cr.ReadRequest(&s.req)
		s.idle.Store(false)
		if err != nil {
			switch {
			case s.parker != nil && !s.headTimed && len(s.cr.Buffered()) == 0 && !s.stopping.Load() && errors.Is(err, os.ErrDeadlineExceeded):
				return nil, true
			case errors.Is(err, h1.ErrMalformed):
				return s.handOff(), false // the general server answers 400 with the details
			case errors.Is(err, h1.ErrHeadTooLarge):
				s.writeError(nil, time.Now(), &RouteError{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: "request head too large"}, true)
			}
			return nil, false
		}
		// Tapped, access-logged and traced requests take the general handler, where tap
		// observes them, the access log records them and their span is recorded.
		if s.req.Upgrade || s.req.Expect || s.req.Unusual || s.req.Minor == 0 || string(s.req.Method) == "CONNECT" || s.h.Tap.Active() || s.h.AccessLog != nil || s.traced() {
			return s.handOff(), false
		}
		if s.req.Chunked || s.req.ContentLength > 0 {
			// The body must make progress (see beforeRead).
			s.reading, s.bodySince = readingBody, time.Time{}
			s.idleSince = time.Time{}
		}
		pending, done := s.forward()
		if pending != nil || done {
			return pending, false
		}
	}
}

// handOffRouted hands the connection to the general handler with the current request
// routed to be (see Handler.route).
func (s *fastConn) handOffRouted(be *Backend) []byte {
	s.ci.routed = be
	return s.handOff()
}

func (s *fastConn) handOff() []byte {
	s.cr.BeforeRead = nil
	s.conn.SetReadDeadline(time.Time{})
	b := s.cr.Buffered()
	if len(b) == 0 {
		return []byte{}
	}
	return b
}

// forward handles the request in s.req. It returns the bytes to hand off when the request
// belongs on the general handler, and done when the connection must end.
func (s *fastConn) forward() (pending []byte, done bool) {
	start := time.Now()
	h := s.h
	s.prepareRouteRequest()
	s.rt, s.pm = nil, policyMetrics{}
	be, err := h.Router.Route(s.hr, s.ci)
	if err != nil {
		return nil, s.writeError(h.errorMetrics(s.ci), start, err, false)
	}
	if be.Policy != nil {
		if be.Policy.Active() {
			return s.handOffRouted(be), false // policy routing (filters, splits) takes the general handler
		}
		s.pm.route, s.pm.backend = be.Policy.DefaultMetrics(be, s.hr.Host)
	}
	if be.Routes != nil {
		if rt := be.Routes.Load().Match(s.hr.Method, s.path); rt != nil {
			if rt.NeedsPolicy() {
				if s.req.Chunked || s.req.ContentLength > maxBufferedBody {
					return s.handOffRouted(be), false
				}
				return nil, s.forwardHTTP(be, nil, rt, start)
			}
			s.rt = rt
		}
	}
	bep, err := be.Balancer.Pick(s.ctx)
	if err != nil {
		return nil, s.writeError(h.errorMetrics(s.ci), start, err, false)
	}
	ep := bep.Value
	if ep.H2 || ep.AuthorityOverride != "" { // a request head to rewrite takes the general exchange
		if s.req.Chunked || s.req.ContentLength > maxBufferedBody {
			return s.handOffRouted(be), false
		}
		if ep.H2 && !s.inbound && !s.req.Chunked && s.req.ContentLength <= 0 && len(s.req.Target) > 0 && s.req.Target[0] == '/' {
			return nil, s.forwardH2(be, bep, start)
		}
		return nil, s.forwardHTTP(be, bep, s.rt, start)
	}
	m := ep.metricsForHost(s.hr.Host)
	m.Request()

	head := string(s.req.Method) == "HEAD"
	clientClose := s.req.Close
	hasBody := s.req.Chunked || s.req.ContentLength > 0
	bep.Start()
	uc, reused, err := ep.pool.get(s.ctx, h.Clients, ep.hostPort)
	if err != nil {
		now := time.Now()
		bep.Done(now, now.Sub(start), be.Balancer.Decay())
		bep.Failed(now.Add(h.failureBackoff()))
		return nil, s.writeError(m, start, err, hasBody)
	}
	for attempt := 0; ; attempt++ {
		uc.w.Reset(uc.conn)
		s.writeRequestHead(uc.w)
		uc.r.FlushBefore(uc.w, s.cw)
		s.cr.FlushBefore(s.cw, uc.w)
		err = nil
		if attempt == 0 {
			s.cr.Consume(&s.req)
			switch {
			case s.req.Chunked:
				err = h1.CopyChunked(uc.w, s.cr)
			case s.req.ContentLength > 0:
				err = h1.CopyFixed(uc.w, s.cr, s.req.ContentLength)
			}
			if err != nil { // the client broke off its request body, or framed it badly
				uc.conn.Close()
				bep.Done(time.Now(), time.Since(start), be.Balancer.Decay())
				if errors.Is(err, h1.ErrMalformed) {
					s.respond(m, http.StatusBadRequest, true, start)
					s.rt, s.pm = nil, policyMetrics{} // recorded by respond
					s.writeError(nil, start, &RouteError{Status: http.StatusBadRequest, Reason: "malformed request body"}, true)
					return nil, true
				}
				s.respond(m, http.StatusBadGateway, true, start)
				return nil, true
			}
		}
		err = uc.r.ReadResponse(&s.resp)
		if err != nil && reused && !hasBody && attempt == 0 && staleConn(err, uc) {
			// The pooled connection was closed by the endpoint while idle; the request
			// never reached it, so it is safe to send again on a fresh connection.
			uc.conn.Close()
			uc, reused, err = ep.pool.get(s.ctx, h.Clients, ep.hostPort)
			if err != nil {
				break
			}
			continue
		}
		break
	}
	s.cr.FlushBefore(s.cw, nil)
	now := time.Now()
	bep.Done(now, now.Sub(start), be.Balancer.Decay())
	if err != nil {
		if isConnectError(err) {
			bep.Failed(now.Add(h.failureBackoff()))
		} else if uc != nil {
			uc.conn.Close()
		}
		return nil, s.writeError(m, start, upstreamError(err), false)
	}
	bep.Recovered()
	// Interim responses (100 Continue, 103 Early Hints) pass through before the final one.
	for s.resp.Status < 200 {
		if s.resp.Status == http.StatusSwitchingProtocols {
			uc.conn.Close()
			return nil, s.writeError(m, start, &RouteError{Status: http.StatusBadGateway, Reason: "unexpected protocol switch"}, true)
		}
		writeResponseHead(s.cw, &s.resp, false, false)
		uc.r.Consume(&s.resp)
		if err := uc.r.ReadResponse(&s.resp); err != nil {
			uc.conn.Close()
			s.respond(m, http.StatusBadGateway, true, start)
			return nil, true
		}
	}
	if s.resp.Unusual {
		uc.conn.Close()
		return nil, s.writeError(m, start, &RouteError{Status: http.StatusBadGateway, Reason: "endpoint sent a response with conflicting framing"}, false)
	}
	status := s.resp.Status
	upstreamClose := s.resp.Close
	untilEOF := false
	switch {
	case head || s.resp.Bodyless(nil):
	case s.resp.Chunked, s.resp.ContentLength >= 0:
	default:
		untilEOF, clientClose, upstreamClose = true, true, true
	}
	writeResponseHead(s.cw, &s.resp, clientClose, untilEOF)
	uc.r.Consume(&s.resp)
	switch {
	case head || s.resp.Bodyless(nil):
	case s.resp.Chunked:
		err = h1.CopyChunked(s.cw, uc.r)
	case s.resp.ContentLength > 0:
		err = h1.CopyFixed(s.cw, uc.r, s.resp.ContentLength)
	case untilEOF:
		err = h1.CopyUntilEOF(s.cw, uc.r)
	}
	end := time.Now()
	if err != nil {
		uc.conn.Close()
		s.respond(m, status, true, start)
		if h.Log != nil {
			h.Log.Debug("response body interrupted", "error", err)
		}
		return nil, true // the client sees a truncated response: the connection must end
	}
	if upstreamClose {
		uc.conn.Close()
	} else {
		ep.pool.put(h.Clients, uc, end)
	}
	s.respond(m, status, false, start)
	if clientClose {
		s.cw.Flush()
		return nil, true
	}
	return nil, false
}

// respond records the response of the current request on m and on its route, if any:
// broken means the exchange failed (a failure whatever the status).
func (s *fastConn) respond(m *metrics.HTTP, status int, broken bool, start time.Time) {
	lat := time.Since(start)
	m.Response(status, broken || status >= 500, lat)
	s.pm.endStatus(status, broken, start)
	if rt := s.rt; rt != nil {
		failure := broken || rt.IsFailure(status, "")
		rt.Metrics.Request()
		rt.Actual.Request()
		rt.Metrics.Response(status, failure, lat)
		rt.Actual.Response(status, failure, lat)
	}
}

// maxBufferedBody is the largest request body the fast path reads into memory to send
// over HTTP/2; larger and chunked bodies take the general handler.
const maxBufferedBody = 64 << 10

// forwardHTTP sends the request in s.req through the general client (exchange): to an
// endpoint that takes HTTP/1 carried over HTTP/2 (another proxy, first), or on a route
// with a timeout or retries (rt; first is nil and each attempt picks an endpoint). The
// body, at most maxBufferedBody, is read into memory first. It relays the response as
// HTTP/1.1 and reports whether the client connection must end.
func (s *fastConn) forwardHTTP(be *Backend, first *balance.Endpoint[*Endpoint], rt *routes.Route, start time.Time) bool {
	h := s.h
	pm := s.pm
	s.rt, s.pm = nil, policyMetrics{} // recorded here, not by writeError
	policy := rt != nil && rt.NeedsPolicy()
	if policy {
		rt.Metrics.Request()
	}
	routeFailed := func(status int) {
		if policy {
			rt.Metrics.Response(status, true, time.Since(start))
		} else {
			recordRoute(rt, status, true, start)
		}
	}
	head := string(s.req.Method) == "HEAD"
	clientClose := s.req.Close
	header := fieldsHeader(&s.req, false, nil)
	if s.inbound {
		s.ci.setClientID(header)
	}
	u, err := url.ParseRequestURI(string(s.req.Target))
	if err != nil {
		routeFailed(http.StatusBadRequest)
		pm.endStatus(http.StatusBadRequest, true, start)
		return s.writeError(h.errorMetrics(s.ci), start, &RouteError{Status: http.StatusBadRequest, Reason: "invalid request target"}, true)
	}
	var body *replay
	cl := s.req.ContentLength
	s.cr.Consume(&s.req)
	if cl > 0 {
		buf := make([]byte, cl)
		if err := s.cr.ReadFull(buf); err != nil {
			routeFailed(http.StatusBadRequest)
			pm.endStatus(http.StatusBadRequest, true, start)
			return true
		}
		body = &replay{buf: buf, keep: true, err: io.EOF}
	} else {
		cl = 0
	}
	if policy && rt.Retryable {
		rt.Budget.Deposit()
	}
	req := (&http.Request{Method: s.hr.Method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: header, ContentLength: cl, Host: s.hr.Host}).WithContext(s.ctx)
	var prt *routes.Route // exchange applies the route's policy, if it has one
	if policy {
		prt = rt
	}
	resp, m, _, err := h.exchange(req, be, first, prt, nil, body, false, start)
	if err != nil {
		if m == nil {
			m = h.errorMetrics(s.ci)
		} else {
			m = nil // the endpoint's metrics have the failed attempts
		}
		status, _ := StatusFor(err)
		routeFailed(status)
		pm.endErr(err, start)
		return s.writeError(m, start, err, false)
	}
	defer resp.Body.Close()
	status := resp.StatusCode
	failure := status >= 500
	if s.relayResponse(resp, head, clientClose) {
		m.Response(status, true, time.Since(start))
		routeFailed(status)
		pm.endResp(resp, true, start)
		return true // the client sees a truncated response
	}
	lat := time.Since(start)
	m.Response(status, failure, lat)
	pm.endResp(resp, false, start)
	if policy {
		rf := rt.IsFailure(status, grpcStatus(resp))
		rt.Actual.Response(status, rf, lat)
		rt.Metrics.Response(status, rf, lat)
	} else if rt != nil {
		recordRoute(rt, status, rt.IsFailure(status, grpcStatus(resp)), start)
	}
	if clientClose {
		s.cw.Flush()
		return true
	}
	return false
}

// forwardH2 sends the request in s.req, an outbound request without a body in origin
// form, to bep, a proxy, over HTTP/2 with l5d-orig-proto, straight from its HTTP/1 head
// (h2.Transport.RoundTripHead: no *http.Request or header map), as forwardHTTP would
// without a route policy. It relays the response as HTTP/1.1 and reports whether the
// client connection must end.
func (s *fastConn) forwardH2(be *Backend, bep *balance.Endpoint[*Endpoint], start time.Time) bool {
	h := s.h
	ep := bep.Value
	rt, pm := s.rt, s.pm
	s.rt, s.pm = nil, policyMetrics{} // recorded here, not by writeError
	m := ep.metricsForHost(s.hr.Host)
	m.Request()
	authority := s.hr.Host
	if ep.AuthorityOverride != "" {
		authority = ep.AuthorityOverride
	} else if authority == "" {
		authority = ep.hostPort
	}
	req := &s.req
	s.h2head.Method, s.h2head.Authority, s.h2head.Path = s.hr.Method, authority, s.hr.RequestURI
	head := string(req.Method) == "HEAD"
	clientClose := req.Close
	bep.Start()
	resp, err := h.Clients.h2.RoundTripFields(s.ctx, ep.hostPort, &s.h2head)
	now := time.Now()
	h.attemptEnded(be, bep, start, now, err)
	s.cr.Consume(req)
	if err != nil {
		status, _ := StatusFor(err)
		m.Response(status, true, now.Sub(start))
		recordRoute(rt, status, true, start)
		pm.endErr(err, start)
		return s.writeError(nil, start, err, false)
	}
	bep.Recovered()
	defer resp.Close()
	status := resp.Status
	if s.relayFields(resp, head, clientClose) {
		m.Response(status, true, time.Since(start))
		recordRoute(rt, status, true, start)
		if !pm.none() {
			pm.endCode(status, fieldsGRPCStatus(resp), true, start)
		}
		return true // the client sees a truncated response
	}
	m.Response(status, status >= 500, time.Since(start))
	if !pm.none() {
		pm.endCode(status, fieldsGRPCStatus(resp), false, start)
	}
	recordRoute(rt, status, rt != nil && rt.IsFailure(status, fieldsGRPCStatus(resp)), start)
	if clientClose {
		s.cw.Flush()
		return true
	}
	return false
}

// maxKeptScratch bounds the buffer a connection keeps for its next request's fields.
const maxKeptScratch = 4 << 10

// h2Fields writes the end-to-end fields of s.req for HTTP/2 (lower-case names, without
// Host, which is the authority, and hop-by-hop fields) and l5d-orig-proto. Their names
// and values are copied into one string, as lowerFields does (the HPACK encoder may keep
// them), made only when it differs from the previous request's: a client repeating its
// fields costs no allocation for them.
func (s *fastConn) h2Fields(enc func(name, value string)) {
	req := &s.req
	var keepBuf [h1.MaxFields]bool
	keep := keepBuf[:len(req.Fields)]
	for i, f := range req.Fields {
		keep[i] = !h1.EqualFold(f.Name, "host") && !req.IsHopByHop(f.Name)
	}
	s.h2scratch = appendLowerFields(s.h2scratch[:0], req, keep)
	if string(s.h2scratch) != s.h2all {
		s.h2all = string(s.h2scratch)
	}
	if cap(s.h2scratch) > maxKeptScratch {
		s.h2scratch = nil // an unusually large head's buffer is not kept
	}
	encodeLowerFields(s.h2all, req, keep, enc)
	enc("l5d-orig-proto", "HTTP/1.1")
}

// relayResponse writes resp to the client as HTTP/1.1 (chunked when its length is
// unknown, each chunk flushed as it comes; trailers after the last one). It reports
// whether the response body broke off, leaving the client a truncated response.
// relayFields is its twin for a response held as HTTP/2 fields.
func (s *fastConn) relayResponse(resp *http.Response, head, clientClose bool) (broken bool) {
	w := s.cw
	status := resp.StatusCode
	writeStatusLine(w, status)
	for k, vv := range resp.Header {
		if isHopHeader(k) {
			continue
		}
		for _, v := range vv {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	bodyless, chunked := writeRelayFraming(w, status, resp.ContentLength, resp.Header.Get("Content-Length") != "", head, clientClose)
	if bodyless {
		return false
	}
	if relayBody(w, resp.Body, chunked) {
		return true
	}
	if chunked {
		for k, vv := range resp.Trailer {
			for _, v := range vv {
				w.WriteString(k)
				w.WriteString(": ")
				w.WriteString(v)
				w.WriteString("\r\n")
			}
		}
		w.WriteString("\r\n")
	}
	return false
}

// writeStatusLine writes the status line of a response relayed as HTTP/1.1.
func writeStatusLine(w *h1.Writer, status int) {
	w.WriteString("HTTP/1.1 ")
	w.WriteString(h2.StatusLine(status))
	w.WriteString("\r\n")
}

// writeRelayFraming ends the head of a response relayed as HTTP/1.1 whose end-to-end
// fields were written: a response to HEAD, a 204 and a 304 have no body (bodyless), one
// of unknown length (cl < 0) goes chunked, and one of known length without a
// Content-Length field (hasCL false) gets one; Connection: close when the client asked
// for it.
func writeRelayFraming(w *h1.Writer, status int, cl int64, hasCL, head, clientClose bool) (bodyless, chunked bool) {
	bodyless = head || status == http.StatusNoContent || status == http.StatusNotModified
	chunked = !bodyless && cl < 0
	switch {
	case chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case !bodyless && !hasCL:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(cl, 10))
		w.WriteString("\r\n")
	}
	if clientClose {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	return bodyless, chunked
}

// relayBody copies body to w through a pooled buffer, as chunks (each flushed, then the
// last chunk, which the caller follows with the trailer section) when chunked. It
// reports whether body broke off. A body of known length that writes itself (an
// io.WriterTo: an HTTP/2 response's, whose large DATA then goes out from the buffers it
// arrived in) is given w; a write to the client failing then stops it, broken too.
func relayBody(w *h1.Writer, body io.Reader, chunked bool) (broken bool) {
	if wt, ok := body.(io.WriterTo); ok && !chunked {
		_, err := wt.WriteTo(w)
		return err != nil
	}
	var lease relaybuf.Lease
	defer lease.Release()
	for {
		buf := lease.Bytes()
		n, rerr := body.Read(buf)
		if n > 0 {
			if chunked {
				w.WriteString(strconv.FormatInt(int64(n), 16))
				w.WriteString("\r\n")
			}
			w.Write(buf[:n])
			if chunked {
				w.WriteString("\r\n")
				w.Flush() // a streamed response reaches the client as it comes
			}
		}
		lease.Read(n)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return true
		}
	}
	if chunked {
		w.WriteString("0\r\n")
	}
	return false
}

func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", HeaderOrigProto:
		return true
	}
	return false
}

// prepareRouteRequest fills the reusable routing request from s.req, reusing the strings
// of the previous request when the values repeat.
func (s *fastConn) prepareRouteRequest() {
	r := s.hr
	if string(s.req.Method) != r.Method {
		r.Method = string(s.req.Method)
	}
	if string(s.req.Host) != r.Host {
		r.Host = string(s.req.Host)
	}
	if string(s.req.Target) != r.RequestURI {
		r.RequestURI = string(s.req.Target)
		path, query, _ := bytes.Cut(s.req.Target, []byte{'?'})
		// As net/http: Path is decoded, RawPath the path as sent when they differ (the
		// parser refused invalid percent-encodings).
		r.URL.Path, r.URL.RawPath = string(path), ""
		if bytes.IndexByte(path, '%') >= 0 {
			if p, err := url.PathUnescape(r.URL.Path); err == nil {
				r.URL.Path, r.URL.RawPath = p, r.URL.Path
			}
		}
		r.URL.RawQuery = string(query)
		s.path, _ = routematch.NormalizePath(r.URL.EscapedPath())
	}
	clear(r.Header)
	if hr, ok := s.h.Router.(HeaderRouter); ok && hr.RoutesOnHeaders(s.ci) {
		for _, f := range s.req.Fields {
			if s.inbound && inboundOwned(f.Name) {
				continue
			}
			k := http.CanonicalHeaderKey(string(f.Name))
			r.Header[k] = append(r.Header[k], string(f.Value))
		}
		if s.inbound {
			s.ci.setClientID(r.Header)
		}
		return
	}
	if s.inbound {
		return
	}
	if v := s.req.Get("l5d-dst-override"); v != nil {
		r.Header["L5d-Dst-Override"] = []string{string(v)}
	}
}

// writeError answers the current request with a proxy error. It reports whether the
// connection must end (the request body was not read, or the client asked to close).
func (s *fastConn) writeError(m *metrics.HTTP, start time.Time, err error, bodyUnread bool) bool {
	status, reason := StatusFor(err)
	if s.h.Log != nil {
		s.h.Log.Debug("proxy error", "status", status, "host", s.hr.Host, "error", err)
	}
	closeAfter := s.req.Close || bodyUnread || s.req.Chunked || s.req.ContentLength > 0
	if !closeAfter {
		s.cr.Consume(&s.req)
	}
	w := s.cw
	writeStatusLine(w, status)
	emit := s.h.errorHeaders(s.ci)
	if emit {
		w.WriteString("L5d-Proxy-Error: ")
		w.WriteString(reason)
		w.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
		w.WriteString(strconv.Itoa(len(reason) + 1))
	} else {
		w.WriteString("Content-Length: 0")
	}
	if closeAfter {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	if emit {
		w.WriteString(reason)
		w.WriteString("\n")
	}
	if m != nil {
		m.Request()
		m.Response(status, true, time.Since(start))
	}
	recordRoute(s.rt, status, true, start)
	s.pm.endErr(err, start)
	if closeAfter {
		w.Flush()
	}
	return closeAfter
}

// attemptEnded records on bep the end, at now, of an attempt begun at start: its
// latency for the balancer and, when err is a failure to connect, the endpoint's backoff.
func (h *Handler) attemptEnded(be *Backend, bep *balance.Endpoint[*Endpoint], start, now time.Time, err error) {
	bep.Done(now, now.Sub(start), be.Balancer.Decay())
	if err != nil && isConnectError(err) {
		bep.Failed(now.Add(h.failureBackoff()))
	}
}

// isConnectError reports whether err is (or wraps) a *ConnectError. Its target lives
// here, not in the callers: errors.As makes its target escape, and a target declared on
// the request path cost a heap allocation per request even when err was nil.
func isConnectError(err error) bool {
	var ce *ConnectError
	return errors.As(err, &ce)
}

func (h *Handler) failureBackoff() time.Duration {
	if h.FailureBackoff > 0 {
		return h.FailureBackoff
	}
	return time.Second
}

// staleConn reports whether err means a reused connection was already closed by the
// endpoint before any response byte arrived.
func staleConn(err error, uc *upstreamConn) bool {
	if len(uc.r.Buffered()) > 0 {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// upstreamError maps a failure to read the response to the error the client sees.
func upstreamError(err error) error {
	if isConnectError(err) {
		return err
	}
	return &RouteError{Status: http.StatusBadGateway, Reason: "endpoint closed the connection or sent an invalid response"}
}

// writeRequestHead writes the request line and end-to-end fields of the request in s.req;
// inbound, the client's l5d-client-id and l5d-dst-override are replaced by the
// connection's verified identity (ConnInfo.setClientID).
func (s *fastConn) writeRequestHead(w *h1.Writer) {
	req := &s.req
	w.Write(req.Method)
	w.WriteString(" ")
	w.Write(req.Target)
	w.WriteString(" HTTP/1.1\r\n")
	writeFields(w, req, s.inbound)
	if id := s.ci.ClientID; s.inbound && id != "" {
		w.WriteString("L5d-Client-Id: ")
		w.WriteString(id)
		w.WriteString("\r\n")
	}
	if req.Chunked {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	w.WriteString("\r\n")
}

// writeResponseHead writes the status line and end-to-end fields of resp, adding the
// framing of the response as relayed.
func writeResponseHead(w *h1.Writer, resp *h1.Head, closeConn, untilEOF bool) {
	w.WriteString("HTTP/1.1 ")
	w.WriteString(strconv.Itoa(resp.Status))
	w.WriteString(" ")
	w.Write(resp.Reason)
	w.WriteString("\r\n")
	writeFields(w, resp, false)
	if resp.Chunked && resp.Status >= 200 {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if closeConn || untilEOF {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
}

// writeFields writes head's end-to-end fields; inbound, without the fields the inbound
// proxy owns (inboundOwned).
func writeFields(w *h1.Writer, head *h1.Head, inbound bool) {
	for _, f := range head.Fields {
		if head.IsHopByHop(f.Name) || inbound && inboundOwned(f.Name) {
			continue
		}
		w.Write(f.Name)
		w.WriteString(": ")
		w.Write(f.Value)
		w.WriteString("\r\n")
	}
}

// traced reports whether the request in s.req carries sampled trace context the handler
// traces (never when tracing is off).
func (s *fastConn) traced() bool {
	if !s.h.Trace.Enabled() {
		return false
	}
	for _, f := range s.req.Fields {
		if trace.SampledField(f.Name, f.Value) {
			return true
		}
	}
	return false
}
