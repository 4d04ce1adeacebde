package app

import (
	"net"
	"net/netip"
	"sync"
)

// listenAll binds first and more with listen and returns one listener accepting from all
// of them (a dual-stack pod's IPv4 and IPv6 addresses); nil when any bind failed.
func listenAll(listen func(string, netip.AddrPort) net.Listener, name string, first netip.AddrPort, more []netip.AddrPort) net.Listener {
	ln := listen(name, first)
	if ln == nil || len(more) == 0 {
		return ln
	}
	lns := []net.Listener{ln}
	for _, a := range more {
		l := listen(name, a)
		if l == nil {
			for _, l := range lns {
				l.Close()
			}
			return nil
		}
		lns = append(lns, l)
	}
	return newMultiListener(lns)
}

// multiListener accepts connections from several listeners; Addr is the first's.
type multiListener struct {
	lns   []net.Listener
	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

func newMultiListener(lns []net.Listener) *multiListener {
	m := &multiListener{lns: lns, conns: make(chan net.Conn), errs: make(chan error, len(lns)), done: make(chan struct{})}
	for _, ln := range lns {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					m.errs <- err
					return
				}
				select {
				case m.conns <- c:
				case <-m.done:
					c.Close()
					return
				}
			}
		}()
	}
	return m
}

func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case err := <-m.errs:
		m.Close()
		return nil, err
	case <-m.done:
		return nil, net.ErrClosed
	}
}

func (m *multiListener) Close() error {
	m.once.Do(func() {
		close(m.done)
		for _, ln := range m.lns {
			ln.Close()
		}
	})
	return nil
}

func (m *multiListener) Addr() net.Addr { return m.lns[0].Addr() }
