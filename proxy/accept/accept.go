// Package accept runs one proxy listener: it accepts connections, recovers each one's
// original destination, detects its protocol (unless the port is opaque) and hands HTTP
// connections to an HTTP server (HTTP/1 and HTTP/2 prior knowledge) and everything else to
// an opaque TCP handler.
package accept

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l5d-go/l5d/proxy/detect"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/h1"
	"github.com/l5d-go/l5d/proxy/meshtls"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/rawsock"
	"github.com/l5d-go/l5d/proxy/transportheader"
)

// OrigDstFunc returns the address a redirected connection was originally sent to
// (SO_ORIGINAL_DST). It fails for connections that were not redirected.
type OrigDstFunc func(c *net.TCPConn) (netip.AddrPort, error)

// TCPHandler serves an opaque connection whose original destination is ci.OrigDst. It owns
// conn and must close it. src counts the client side's bytes (see opaque.Relay).
type TCPHandler func(ctx context.Context, conn net.Conn, ci *forward.ConnInfo, src *metrics.TCP)

// Server is one listener's accept loop. Fields must be set before Serve.
type Server struct {
	// Direction is "inbound" or "outbound" (metrics label and logs).
	Direction string
	// OrigDst recovers original destinations; nil means every connection uses Fallback.
	OrigDst OrigDstFunc
	// Fallback is the original destination of connections OrigDst cannot resolve, or that
	// were addressed to the listener itself (no redirect). Invalid: such connections are
	// refused.
	Fallback netip.AddrPort
	// DetectTimeout bounds protocol detection.
	DetectTimeout time.Duration
	// Opaque reports whether a destination port skips detection.
	Opaque func(dst netip.AddrPort) bool
	// Hold, when set, is called for each connection once its original destination is
	// known, before Opaque; the release it returns (nil for none) is called once, when the
	// connection is closed. Discovery uses it to keep what the connection resolved cached
	// for as long as the connection is open.
	Hold func(dst netip.AddrPort) (release func())
	// HTTP serves detected HTTP connections.
	HTTP http.Handler
	// TCP serves opaque connections.
	TCP TCPHandler
	// Metrics receives the accepted side's TCP metrics (peer="src").
	Metrics *metrics.Registry
	// TCPLabels renders extra labels of accepted connections (tls...). Optional.
	TCPLabels string
	// TLS, when set, inspects each connection before detection: mesh TLS for this proxy
	// is terminated (its connections are labelled tls="true" with client_id), other TLS
	// is relayed untouched as opaque (tls="passthru"), anything else continues as it is.
	// Mesh TLS negotiated with the opaque transport's ALPN starts with a transport header:
	// the connection then goes, as opaque TCP, to the port the header names (even when it
	// was not redirected, as a client proxy connects to the inbound port directly).
	TLS *meshtls.Terminator
	// OwnPort, when set, reports whether a port is one of the proxy's own listeners
	// (inbound, outbound, admin, control). A connection whose destination port, original or
	// named by a transport header, is one of them is refused: it would be delivered to the
	// proxy itself on loopback, where the admin server trusts its clients.
	OwnPort func(port uint16) bool
	// Admit, when set, is called once a connection's destination (ci.OrigDst) and mesh
	// TLS identity are known, before detection; false refuses the connection. It may
	// block for a bounded time: the inbound side waits there for the destination port's
	// policy.
	Admit func(ci *forward.ConnInfo) bool
	// OpaqueFallback, when set, reports whether a connection to dst that does not speak
	// HTTP may be served as opaque TCP. When it does not, a connection whose detection
	// gave up on bytes that begin an HTTP request (a client that paused) is served as
	// HTTP, and others are refused, including TLS passed through and opaque transport
	// connections. Ports configured opaque (Opaque) are not asked.
	OpaqueFallback func(dst netip.AddrPort) bool
	// Gateway, when set, makes the listener a multicluster gateway's: a mesh TLS
	// connection with a verified client identity that is addressed to the proxy itself (not
	// redirected, or redirected to one of its own ports), or whose transport header names
	// a Service by name, is served by Gateway's handlers rather than delivered to the
	// application, with ci.Gateway set, ci.OrigDst the listener's own address (its port's
	// policy applies) and ci.GatewayTarget the header's "name:port". Without Gateway a
	// transport header naming a Service is refused.
	Gateway *Handlers
	// Keepalive is the accepted connections' TCP keepalive period (0: off).
	Keepalive time.Duration
	// AfterIdleBurst, when set, is called (on a goroutine of its own) each time a burst
	// of HTTP/1 connections has gone idle and settled, their goroutines ended: the memory
	// that served them is free (see rawsock.NewPoller).
	AfterIdleBurst func()
	// Log receives connection errors at debug level and serving errors.
	Log *slog.Logger

	srcMu      sync.RWMutex
	srcMetrics map[srcKey]*metrics.TCP
	open       atomic.Int64
	// idle holds HTTP/1 connections waiting for their next request without a goroutine
	// (forward.Parker); nil when the poller could not start. conns counts the
	// connections being served or parked, which Serve waits for.
	idle  atomic.Pointer[rawsock.Poller]
	conns sync.WaitGroup
	// connCtx is the context the connections are served with, httpLn the general HTTP
	// server's listener (both set by Serve before it accepts).
	connCtx context.Context
	httpLn  *chanListener
}

// Handlers serve the connections of one kind: HTTP (which may implement FastHTTP1 and
// FastHTTP2) and opaque TCP.
type Handlers struct {
	HTTP http.Handler
	TCP  TCPHandler
}

// httpHandler is the general HTTP server's handler: the gateway's for gateway
// connections, HTTP otherwise.
func (s *Server) httpHandler() http.Handler {
	if s.Gateway == nil {
		return s.HTTP
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ci := forward.ConnInfoFrom(r.Context()); ci != nil && ci.Gateway {
			s.Gateway.HTTP.ServeHTTP(w, r)
			return
		}
		s.HTTP.ServeHTTP(w, r)
	})
}

// Serve accepts on ln until ctx ends, then stops accepting, lets HTTP connections finish
// their requests for up to grace and closes what remains. It returns nil after a clean
// shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	s.srcMetrics = map[srcKey]*metrics.TCP{}
	httpLn := newChanListener(ln.Addr())
	s.httpLn = httpLn
	hs := &http.Server{
		Handler:           s.httpHandler(),
		ReadHeaderTimeout: forward.HeaderReadTimeout,
		// The general server takes the same head bound as the fast path, so a head handed
		// over (an Expect request, HTTP/1.0) cannot be larger than one the fast path refuses.
		MaxHeaderBytes: h1.MaxHeadBytes,
		IdleTimeout:    90 * time.Second,
		ErrorLog:       slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if cc, ok := c.(*countedConn); ok {
				return forward.WithConnInfo(ctx, cc.info)
			}
			return ctx
		},
	}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Serve(httpLn) }()
	if p, err := rawsock.NewPoller(s.AfterIdleBurst); err != nil {
		s.Log.Warn("idle connections will each keep a goroutine", "direction", s.Direction, "error", err)
	} else {
		s.idle.Store(p)
	}

	wg := &s.conns
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()
	s.connCtx = connCtx
	acceptDone := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				acceptDone <- err
				return
			}
			wg.Add(1)
			go func() {
				// No defer: its record would stay on the stack of every connection.
				s.serveConn(c)
				wg.Done()
			}()
		}
	}()

	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-acceptDone:
		serveErr = fmt.Errorf("%s listener on %s: %w", s.Direction, ln.Addr(), err)
	}
	ln.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		hs.Close()
	}
	<-httpDone
	cancelConns()
	if p := s.idle.Load(); p != nil {
		p.Close() // parked connections are closed
	}
	wg.Wait()
	if serveErr != nil && ctx.Err() == nil {
		return serveErr
	}
	return nil
}

// OpenConnections returns the number of accepted connections not yet closed.
func (s *Server) OpenConnections() int { return int(s.open.Load()) }

// ParkedConnections returns the number of open connections waiting for their next
// request without a goroutine (see forward.Parker).
func (s *Server) ParkedConnections() int {
	if p := s.idle.Load(); p != nil {
		return p.Parked()
	}
	return 0
}

func (s *Server) serveConn(c net.Conn) {
	ctx := s.connCtx
	// What admit needs (TLS, detection) stays in its frame, which has returned by the
	// time the connection is served: a connection waiting for its next request keeps a
	// goroutine stack small enough for the runtime to shrink.
	cc, proto := s.admit(c)
	if cc == nil {
		return
	}
	handlers := s.handlers(cc.info)
	if proto == detect.Opaque {
		handlers.TCP(ctx, cc.Conn, cc.info, cc.m)
		cc.done()
		return
	}
	if fast, ok := handlers.HTTP.(FastHTTP2); ok && proto == detect.HTTP2 {
		fast.ServeHTTP2(ctx, cc, cc.info)
		return
	}
	if fast, ok := handlers.HTTP.(FastHTTP1); ok && proto == detect.HTTP1 {
		fast.ServeHTTP1(ctx, cc, cc.info, cc.handOver)
		return
	}
	cc.handOver(nil)
}

// handlers are those serving the connections of ci: the gateway's or the listener's.
func (s *Server) handlers(ci *forward.ConnInfo) Handlers {
	if ci.Gateway {
		return *s.Gateway
	}
	return Handlers{HTTP: s.HTTP, TCP: s.TCP}
}

// handOver is the fast path's fallback: the connection, with pending replayed first,
// goes to the general HTTP server.
func (c *countedConn) handOver(pending []byte) {
	c.pending = pending
	if !c.srv.httpLn.push(c.srv.connCtx, c) {
		c.Close()
	}
}

// admit finds the original destination of c, terminates mesh TLS, admits the
// connection and detects its protocol. It returns the connection with its metrics open
// and its protocol (Opaque: to be relayed as TCP), or nil when it was refused (and
// closed).
func (s *Server) admit(c net.Conn) (*countedConn, detect.Protocol) {
	tc, _ := c.(*net.TCPConn)
	s.keepAlive(tc)
	dst, dstErr := s.origDst(tc)
	c = rawsock.Wrap(c)
	if dstErr != nil && s.TLS == nil {
		s.Log.Debug("refusing connection", "direction", s.Direction, "client", c.RemoteAddr(), "error", dstErr)
		c.Close()
		return nil, detect.Opaque
	}
	ci := &forward.ConnInfo{Direction: s.Direction, Client: addrPort(c.RemoteAddr())}
	var conn net.Conn = c
	labels := s.TCPLabels
	passthrough, transported := false, false
	if s.TLS != nil {
		res, err := s.TLS.Accept(c, s.DetectTimeout)
		if err != nil {
			s.Log.Debug("refusing connection", "direction", s.Direction, "client", c.RemoteAddr(), "error", err)
			c.Close()
			return nil, detect.Opaque
		}
		conn = res.Conn
		switch res.Kind {
		case meshtls.Terminated:
			ci.TLS, ci.ClientID = true, res.ClientID
			labels = metrics.Labels("tls", "true", "client_id", res.ClientID)
			if res.ALPN == transportheader.ALPN {
				// Opaque transport: the header names the application port the client
				// proxy's connection was meant for. Only a client proxy with a verified
				// mesh identity may use it: the header lets a client choose any port on
				// loopback.
				if res.ClientID == "" {
					s.Log.Warn("refusing an opaque transport connection without a client identity", "client", c.RemoteAddr())
					c.Close()
					return nil, detect.Opaque
				}
				h, err := s.readTransportHeader(conn)
				if err == nil && h.Name != "" {
					// A Service named rather than a port: only a gateway forwards it.
					if s.Gateway == nil {
						s.Log.Warn("refusing a transport header naming a Service: the proxy is not a gateway", "client", c.RemoteAddr(), "client_id", res.ClientID, "name", h.Name)
						c.Close()
						return nil, detect.Opaque
					}
					ci.Gateway, ci.GatewayTarget = true, net.JoinHostPort(h.Name, strconv.Itoa(int(h.Port)))
					dst, dstErr = addrPort(c.LocalAddr()), nil
					transported = h.Protocol == transportheader.Opaque
					break
				}
				if err == nil && (h.Port == addrPort(c.LocalAddr()).Port() || s.OwnPort != nil && s.OwnPort(h.Port)) {
					err = fmt.Errorf("the header names the proxy's own port %d", h.Port)
				}
				if err != nil {
					s.Log.Warn("closing a connection with a malformed transport header", "client", c.RemoteAddr(), "client_id", res.ClientID, "error", err)
					c.Close()
					return nil, detect.Opaque
				}
				dst, dstErr = netip.AddrPortFrom(addrPort(c.LocalAddr()).Addr().Unmap(), h.Port), nil
				transported = h.Protocol == transportheader.Opaque
			} else if s.Gateway != nil && res.ClientID != "" && (dstErr != nil || s.OwnPort != nil && s.OwnPort(dst.Port())) {
				// A client proxy's connection to the gateway itself: each request names
				// the Service it is for.
				ci.Gateway = true
				dst, dstErr = addrPort(c.LocalAddr()), nil
			}
		case meshtls.Passthrough:
			passthrough = true
			labels = metrics.Labels("tls", "passthru", "sni", res.SNI)
		}
	}
	if dstErr == nil && !ci.Gateway && s.OwnPort != nil && s.OwnPort(dst.Port()) {
		dstErr = fmt.Errorf("the original destination %s is one of the proxy's own ports", dst)
	}
	if dstErr != nil {
		s.Log.Debug("refusing connection", "direction", s.Direction, "client", c.RemoteAddr(), "error", dstErr)
		c.Close()
		return nil, detect.Opaque
	}
	ci.OrigDst = dst
	if s.Admit != nil && !s.Admit(ci) {
		s.Log.Debug("refusing connection", "direction", s.Direction, "client", c.RemoteAddr(), "dst", dst, "error", "not admitted")
		c.Close()
		return nil, detect.Opaque
	}
	src := s.srcTCP(dst, labels)
	src.Open()
	s.open.Add(1)
	var release func()
	if s.Hold != nil {
		release = s.Hold(dst)
	}
	cc := &countedConn{Conn: conn, info: ci, m: src, open: &s.open, release: release, srv: s}
	proto := detect.Opaque
	configuredOpaque := s.Opaque != nil && s.Opaque(dst)
	// Unless the port is configured opaque, OpaqueFallback decides whether what is not
	// HTTP may be relayed as opaque TCP.
	if !passthrough && !transported && !configuredOpaque {
		p, dc, err := detect.Detect(conn, s.DetectTimeout)
		if err != nil {
			s.Log.Debug("protocol detection failed", "direction", s.Direction, "client", c.RemoteAddr(), "error", err)
			c.Close()
			cc.done()
			return nil, detect.Opaque
		}
		proto, conn = p, dc
		if proto == detect.Opaque && s.OpaqueFallback != nil && !s.OpaqueFallback(dst) {
			// Only HTTP may reach this port: what began as a request is served as one,
			// anything else is refused.
			if proto = detect.Partial(dc.Buffered()); proto == detect.Opaque {
				s.Log.Debug("refusing a connection that is not HTTP to a port only served as HTTP", "direction", s.Direction, "client", c.RemoteAddr(), "dst", dst)
				conn.Close()
				cc.done()
				return nil, detect.Opaque
			}
		}
	} else if !configuredOpaque && s.OpaqueFallback != nil && !s.OpaqueFallback(dst) {
		s.Log.Debug("refusing an opaque connection to a port only served as HTTP", "direction", s.Direction, "client", c.RemoteAddr(), "dst", dst)
		conn.Close()
		cc.done()
		return nil, detect.Opaque
	}
	cc.Conn = conn
	if dc, ok := conn.(*detect.Conn); ok {
		if ir, ok := dc.NetConn().(h1.IdleReader); ok {
			cc.detected, cc.idle = dc, ir
		}
	}
	return cc, proto
}

// keepAlive sets the server's keepalive period on an accepted connection (nil: none).
func (s *Server) keepAlive(tc *net.TCPConn) {
	if tc != nil && s.Keepalive > 0 {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: s.Keepalive, Interval: s.Keepalive})
	}
}

// readTransportHeader reads the opaque transport header at the start of conn within the
// detection timeout.
func (s *Server) readTransportHeader(conn net.Conn) (transportheader.Header, error) {
	if s.DetectTimeout > 0 {
		conn.SetReadDeadline(time.Now().Add(s.DetectTimeout))
		defer conn.SetReadDeadline(time.Time{})
	}
	return transportheader.Read(conn)
}

// FastHTTP2 is implemented by HTTP handlers that serve HTTP/2 (prior knowledge)
// connections themselves; ServeHTTP2 owns conn and closes it before returning.
type FastHTTP2 interface {
	ServeHTTP2(ctx context.Context, conn net.Conn, ci *forward.ConnInfo)
}

// FastHTTP1 is implemented by HTTP handlers that serve HTTP/1 connections themselves
// (forward.Handler). ServeHTTP1 owns conn until it returns, or until it calls fallback,
// which hands the connection, with the given unhandled bytes replayed first, to the
// general HTTP server.
type FastHTTP1 interface {
	ServeHTTP1(ctx context.Context, conn net.Conn, ci *forward.ConnInfo, fallback func(pending []byte))
}

func (s *Server) origDst(tc *net.TCPConn) (netip.AddrPort, error) {
	if s.OrigDst != nil && tc != nil {
		dst, err := s.OrigDst(tc)
		if err == nil && dst != addrPort(tc.LocalAddr()) {
			return dst, nil
		}
		if err == nil {
			err = errors.New("connection was not redirected (original destination is the proxy itself)")
		}
		if s.Fallback.IsValid() {
			return s.Fallback, nil
		}
		return netip.AddrPort{}, err
	}
	if s.Fallback.IsValid() {
		return s.Fallback, nil
	}
	return netip.AddrPort{}, errors.New("no original destination: SO_ORIGINAL_DST unavailable and no fallback configured")
}

// maxSrcMetrics bounds the cached handles of Server.srcTCP.
const maxSrcMetrics = 10000

// srcKey identifies the accepted-side TCP metrics of a destination and TLS state.
type srcKey struct {
	dst    netip.AddrPort
	labels string
}

func (s *Server) srcTCP(dst netip.AddrPort, labels string) *metrics.TCP {
	k := srcKey{dst, labels}
	s.srcMu.RLock()
	m := s.srcMetrics[k]
	s.srcMu.RUnlock()
	if m != nil {
		return m
	}
	m = s.Metrics.TCP(metrics.Join(metrics.Labels("direction", s.Direction, "peer", "src",
		"target_addr", dst.String(), "target_ip", dst.Addr().String()), labels))
	s.srcMu.Lock()
	if len(s.srcMetrics) >= maxSrcMetrics {
		// Many destinations or server names: start over rather than keep every handle
		// (the registry keeps the series themselves, bounded).
		clear(s.srcMetrics)
	}
	s.srcMetrics[k] = m
	s.srcMu.Unlock()
	return m
}

// addrPort returns a connection's address as an AddrPort; none for a nil one (the peer
// address of a socket made a connection again after a reset).
func addrPort(a net.Addr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// countedConn is an accepted HTTP connection: it counts bytes and closes its metrics once.
type countedConn struct {
	net.Conn
	info   *forward.ConnInfo
	m      *metrics.TCP
	open   *atomic.Int64
	closed atomic.Bool
	// release, when set, ends the connection's hold on what it resolved (Server.Hold).
	release func()
	// pending are bytes to return before reading from Conn again.
	pending []byte
	// idle is the connection under detected when it reads without holding a buffer
	// while it waits (see ReadWith); detected is nil once dropped by Park.
	detected *detect.Conn
	idle     h1.IdleReader
	srv      *Server
	// dst is the original destination while the connection is parked without its
	// ConnInfo (info nil; see Park).
	dst netip.AddrPort
}

// Park implements forward.Parker: a connection over a socket the server's poller can
// watch (rawsock), with no replayed or handed-over bytes left, is parked there, the
// connection itself its owner (nothing of the fast path is kept: Ready serves it
// again); the server waits for it at shutdown as for a connection being served.
func (c *countedConn) Park(deadline time.Time) bool {
	raw, ok := c.idle.(*rawsock.Conn)
	p := c.srv.idle.Load()
	if !ok || p == nil || len(c.pending) > 0 || c.detected != nil && len(c.detected.Buffered()) > 0 {
		return false
	}
	// While it is parked the connection keeps its socket and little else: the poller
	// keeps the socket without its net.TCPConn (Ready brings a new one), the
	// detection's replay, all read, is dropped, and so is the ConnInfo of a plain
	// connection (no TLS identity, no gateway target), which Ready makes again from
	// the socket and the original destination.
	c.Conn, c.idle, c.detected = nil, nil, nil
	if ci := c.info; !ci.TLS && ci.ClientID == "" && !ci.Gateway && ci.GatewayTarget == "" {
		c.dst, c.info = ci.OrigDst, nil
	}
	c.srv.conns.Add(1)
	if !p.Park(raw, deadline, c) {
		c.Conn, c.idle = raw, raw
		c.unparked()
		c.srv.conns.Done()
		return false
	}
	return true
}

// unparked makes again the ConnInfo Park dropped, if it did.
func (c *countedConn) unparked() {
	if c.info == nil {
		c.info = &forward.ConnInfo{Direction: c.srv.Direction, OrigDst: c.dst, Client: addrPort(c.RemoteAddr())}
	}
}

// Ready implements rawsock.Parked: the parked connection has input, and is served on
// the fast path again (the handler that parked it).
func (c *countedConn) Ready(raw *rawsock.Conn) {
	c.Conn, c.idle = raw, raw
	c.srv.keepAlive(raw.TCPConn) // made again from its socket, it has package net's
	c.unparked()
	fast := c.srv.handlers(c.info).HTTP.(FastHTTP1)
	fast.ServeHTTP1(c.srv.connCtx, c, c.info, c.handOver)
	c.srv.conns.Done()
}

// Expire implements rawsock.Parked: the parked connection's idle timeout passed, the
// listener is shutting down or its socket could not be made a connection again; the
// poller has closed the socket.
func (c *countedConn) Expire() {
	c.done()
	c.srv.conns.Done()
}

// ReadWith implements h1.IdleReader: once the bytes read during detection and before a
// hand-over are consumed, a connection over a socket that can wait without a buffer
// (rawsock) holds none while it waits; other connections read into the buffer get lends.
func (c *countedConn) ReadWith(get func() []byte, put func([]byte)) ([]byte, int, error) {
	if len(c.pending) == 0 && c.idle != nil && (c.detected == nil || len(c.detected.Buffered()) == 0) {
		buf, n, err := c.idle.ReadWith(get, put)
		c.m.Read(n)
		return buf, n, err
	}
	return c.readInto(get, put)
}

// readInto is ReadWith holding a buffer while it waits.
func (c *countedConn) readInto(get func() []byte, put func([]byte)) ([]byte, int, error) {
	buf := get()
	n, err := c.Read(buf)
	if n == 0 {
		put(buf)
		buf = nil
		if err == nil {
			err = io.ErrNoProgress
		}
	}
	return buf, n, err
}

func (c *countedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		// Bytes the fast path read (and counted) before handing the connection over.
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	c.m.Read(n)
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.m.Wrote(n)
	return n, err
}

func (c *countedConn) Close() error {
	c.done()
	return c.Conn.Close()
}

// done closes the connection's metrics and its hold, once, leaving Conn to its owner.
func (c *countedConn) done() {
	if c.closed.CompareAndSwap(false, true) {
		c.m.Close()
		c.open.Add(-1)
		if c.release != nil {
			c.release()
		}
	}
}

// chanListener feeds connections that passed detection to the HTTP server.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(ctx context.Context, c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	case <-ctx.Done():
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
