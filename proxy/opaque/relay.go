// Package opaque relays opaque TCP connections: bytes are copied both ways unchanged,
// half-closes are passed on, and byte counts go to the TCP metrics as they flow.
package opaque

import (
	"errors"
	"io"
	"net"
	"sync"

	"github.com/l5d-go/l5d/proxy/metrics"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// Relay copies client->server and server->client until both directions have ended, then
// closes both connections. When one side finishes sending (EOF), the other side's write
// half is closed so that protocols relying on half-close work; an error in either
// direction closes both connections at once. src and dst, when non-nil, receive the byte
// counts of the client and server sides (read = from that peer, write = to that peer).
func Relay(client, server net.Conn, src, dst *metrics.TCP) {
	var wg sync.WaitGroup
	var once sync.Once
	abort := func() { once.Do(func() { client.Close(); server.Close() }) }
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := pipe(server, client, dst, src); err != nil {
			abort()
			return
		}
		closeWrite(server)
	}()
	if err := pipe(client, server, src, dst); err != nil {
		abort()
	} else {
		closeWrite(client)
	}
	wg.Wait()
	abort()
}

// pipe copies from r to w until EOF (nil error) or an error, counting bytes read from r's
// peer on rm and written to w's peer on wm.
func pipe(w, r net.Conn, wm, rm *metrics.TCP) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if rm != nil {
				rm.Read(n)
			}
			m, werr := w.Write(buf[:n])
			if wm != nil {
				wm.Wrote(m)
			}
			if werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func closeWrite(c net.Conn) {
	for {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
			return
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		c = u.NetConn()
	}
}
