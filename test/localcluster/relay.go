package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// relay accepts connections on a listener (one made inside the node namespace) and joins
// each to a new connection made by dial (from the host, to loopback), copying bytes both
// ways until either side closes.
type relay struct {
	ln   net.Listener
	dial func(ctx context.Context) (net.Conn, error)
	log  *slog.Logger

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// newRelay starts relaying ln's connections; Close stops it.
func newRelay(ln net.Listener, dial func(ctx context.Context) (net.Conn, error), log *slog.Logger) *relay {
	r := &relay{ln: ln, dial: dial, log: log, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.serve()
	return r
}

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.log.Error("relay: accepting", "addr", r.ln.Addr(), "err", err)
			}
			return
		}
		if !r.track(c) {
			c.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.untrack(c)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			up, err := r.dial(ctx)
			cancel()
			if err != nil {
				r.log.Warn("relay: dialling upstream", "from", c.RemoteAddr(), "err", err)
				c.Close()
				return
			}
			if !r.track(up) {
				up.Close()
				c.Close()
				return
			}
			defer r.untrack(up)
			splice(c, up)
		}()
	}
}

// track records c so Close can end it; false when the relay is closed.
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// Addr is the listener's address.
func (r *relay) Addr() net.Addr { return r.ln.Addr() }

// Close stops accepting, closes every open connection and waits for the copies to end.
func (r *relay) Close() error {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	err := r.ln.Close()
	r.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("closing relay listener: %w", err)
	}
	return nil
}

// closeWriter is a connection whose sending side can be shut down alone.
type closeWriter interface{ CloseWrite() error }

// splice copies a->b and b->a until both directions end, half-closing each side when its
// peer stops sending, then closes both.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(closeWriter); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}
