package servicemirror

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// switchRelay forwards a loopback port to the remote API server; Down closes the
// listener and every open connection (the API server "goes away"), Up listens again
// on the same port.
type switchRelay struct {
	t      testing.TB
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newSwitchRelay(t testing.TB, target string) *switchRelay {
	r := &switchRelay{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.Down)
	return r
}

func (r *switchRelay) serve(ln net.Listener) {
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					r.t.Logf("relay: accept: %v", err)
				}
				return
			}
			up, err := net.Dial("tcp", r.target)
			if err != nil {
				c.Close()
				continue
			}
			if !r.track(c, up) {
				return
			}
			r.wg.Add(2)
			go func() { defer r.wg.Done(); _, _ = io.Copy(up, c); up.Close() }()
			go func() { defer r.wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

func (r *switchRelay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
	return true
}

// Down stops relaying: new connections are refused, open ones are cut.
func (r *switchRelay) Down() {
	r.mu.Lock()
	ln := r.ln
	r.ln = nil
	for c := range r.conns {
		c.Close()
		delete(r.conns, c)
	}
	r.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	r.wg.Wait()
}

// Up listens on the same port again.
func (r *switchRelay) Up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("relay: listening again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}
