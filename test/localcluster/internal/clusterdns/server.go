package clusterdns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// tcpIdleTimeout is how long a TCP connection may sit between queries before it is closed.
const tcpIdleTimeout = 10 * time.Second

// Server serves a Responder over UDP and TCP.
type Server struct {
	resp *Responder
	pc   net.PacketConn
	ln   net.Listener
	log  *slog.Logger

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Serve starts answering the queries that arrive on pc (UDP) and ln (TCP, RFC 7766
// framing, several queries per connection) with r, logging to log; either may be nil.
// Close stops it.
func Serve(r *Responder, pc net.PacketConn, ln net.Listener, log *slog.Logger) *Server {
	s := &Server{resp: r, pc: pc, ln: ln, log: log, conns: map[net.Conn]struct{}{}}
	if pc != nil {
		s.wg.Add(1)
		go s.serveUDP()
	}
	if ln != nil {
		s.wg.Add(1)
		go s.serveTCP()
	}
	return s
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("dns: reading a UDP query", "err", err)
			}
			return
		}
		reply, err := s.resp.Answer(buf[:n], 512)
		if err != nil {
			s.log.Debug("dns: dropping a UDP message", "from", from, "err", err)
			continue
		}
		if _, err := s.pc.WriteTo(reply, from); err != nil {
			s.log.Debug("dns: sending a UDP response", "to", from, "err", err)
		}
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("dns: accepting a TCP connection", "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// serveConn answers length-prefixed queries on c until the client closes it, sends a
// message that gets no answer, or stays idle for tcpIdleTimeout.
func (s *Server) serveConn(c net.Conn) {
	var size [2]byte
	buf := make([]byte, 65535)
	for {
		if err := c.SetReadDeadline(time.Now().Add(tcpIdleTimeout)); err != nil {
			return
		}
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		reply, err := s.resp.Answer(buf[:n], 65535)
		if err != nil {
			s.log.Debug("dns: closing a TCP connection after a bad message", "from", c.RemoteAddr(), "err", err)
			return
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reply)), uint16(len(reply)))
		if err := c.SetWriteDeadline(time.Now().Add(tcpIdleTimeout)); err != nil {
			return
		}
		if _, err := c.Write(append(out, reply...)); err != nil {
			return
		}
	}
}

// Close stops serving: it closes the socket, the listener and every TCP connection and
// waits for the server's goroutines to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	var errs []error
	if s.pc != nil {
		if err := s.pc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("closing the DNS UDP socket: %w", err))
		}
	}
	if s.ln != nil {
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("closing the DNS TCP listener: %w", err))
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}
