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

	wg    sync.WaitGroup
	conns connSet
}

// newRelay starts relaying ln's connections; Close stops it.
func newRelay(ln net.Listener, dial func(ctx context.Context) (net.Conn, error), log *slog.Logger) *relay {
	r := &relay{ln: ln, dial: dial, log: log}
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
		if !r.conns.track(c) {
			c.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.conns.untrack(c)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			up, err := r.dial(ctx)
			cancel()
			if err != nil {
				r.log.Warn("relay: dialling upstream", "from", c.RemoteAddr(), "err", err)
				c.Close()
				return
			}
			if !r.conns.track(up) {
				up.Close()
				c.Close()
				return
			}
			defer r.conns.untrack(up)
			splice(c, up)
		}()
	}
}

// Addr is the listener's address.
func (r *relay) Addr() net.Addr { return r.ln.Addr() }

// Close stops accepting, closes every open connection and waits for the copies to end.
func (r *relay) Close() error {
	r.conns.closeAll()
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
