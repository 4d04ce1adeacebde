package forward

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/l5d-go/l5d/proxy/h1"
)

// upstreamConn is a pooled HTTP/1 connection to an endpoint with its codec buffers.
type upstreamConn struct {
	conn     net.Conn
	r        *h1.Reader
	w        *h1.Writer
	lastUsed time.Time
	// head is the response head being read (readFinalHead), kept so that its field
	// list is reused from one response to the next.
	head h1.Head
}

// connPool keeps idle HTTP/1 connections to one endpoint for reuse, most recently used
// first, and closes those idle longer than the clients' idle timeout.
type connPool struct {
	mu     sync.Mutex
	idle   []*upstreamConn
	reaper *time.Timer
}

// get returns an idle connection (reused=true) or a new one.
func (p *connPool) get(ctx context.Context, c *Clients, addr string) (uc *upstreamConn, reused bool, err error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		uc = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return uc, true, nil
	}
	p.mu.Unlock()
	conn, err := c.connect(ctx, addr)
	if err != nil {
		return nil, false, err
	}
	uc = &upstreamConn{conn: conn, r: h1.NewReader(conn), w: h1.NewWriter(conn)}
	return uc, false, nil
}

// put returns uc to the pool, or closes it when the pool is full.
func (p *connPool) put(c *Clients, uc *upstreamConn, now time.Time) {
	uc.lastUsed = now
	uc.r.FlushBefore(nil, nil)
	uc.r.Release()
	p.mu.Lock()
	if len(p.idle) >= c.maxIdle {
		p.mu.Unlock()
		uc.conn.Close()
		return
	}
	p.idle = append(p.idle, uc)
	if p.reaper == nil {
		p.reaper = time.AfterFunc(c.idleTimeout, func() { p.reap(c.idleTimeout) })
	}
	p.mu.Unlock()
}

// reap closes connections idle for longer than idle and re-arms itself while any remain.
func (p *connPool) reap(idle time.Duration) {
	cutoff := time.Now().Add(-idle)
	p.mu.Lock()
	keep := p.idle[:0]
	var stale []*upstreamConn
	for _, uc := range p.idle {
		if uc.lastUsed.Before(cutoff) {
			stale = append(stale, uc)
		} else {
			keep = append(keep, uc)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	if len(p.idle) > 0 {
		p.reaper.Reset(idle)
	} else {
		p.reaper = nil
	}
	p.mu.Unlock()
	for _, uc := range stale {
		uc.conn.Close()
	}
}
