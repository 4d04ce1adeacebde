package forward

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// roundTripH1 sends r to ep over a pooled HTTP/1.1 connection and reads the response
// on the calling goroutine: no per-request goroutines or channels, unlike http.Transport.
// The connection returns to the pool when the response body has been read to its end.
// With watch, ctx ending before the response headers arrive aborts the exchange (route
// timeouts); otherwise only connecting observes ctx.
func (h *Handler) roundTripH1(ctx context.Context, ep *Endpoint, r *http.Request, watch bool) (*http.Response, error) {
	replayable := r.Body == nil || r.Body == http.NoBody
	if _, ok := r.Header["User-Agent"]; !ok {
		r.Header["User-Agent"] = nil // forward the client's absence of one, not Go's default
	}
	for attempt := 0; ; attempt++ {
		uc, reused, err := ep.pool.get(ctx, h.Clients, ep.hostPort)
		if err != nil {
			return nil, err
		}
		if uc.br == nil {
			uc.br = bufio.NewReaderSize(uc.conn, 8<<10)
			uc.bw = bufio.NewWriterSize(uc.conn, 8<<10)
		}
		var stop func() bool
		if watch {
			conn := uc.conn
			stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
		}
		resp, err := sendH1(uc, r)
		if stop != nil && !stop() {
			// ctx ended during the exchange: the connection is unusable.
			uc.conn.Close()
			return nil, context.Cause(ctx)
		}
		if err != nil {
			uc.conn.Close()
			if reused && replayable && attempt == 0 {
				continue // the endpoint closed the idle connection; nothing reached it
			}
			return nil, err
		}
		if resp.Body == http.NoBody || resp.ContentLength == 0 {
			if resp.Body != http.NoBody {
				resp.Body.Close()
			}
			resp.Body = http.NoBody
			if resp.Close {
				uc.conn.Close()
			} else {
				ep.pool.put(h.Clients, uc, time.Now())
			}
			return resp, nil
		}
		resp.Body = &pooledBody{rc: resp.Body, uc: uc, ep: ep, c: h.Clients, reusable: !resp.Close}
		return resp, nil
	}
}

func sendH1(uc *upstreamConn, r *http.Request) (*http.Response, error) {
	if err := r.Write(uc.bw); err != nil {
		return nil, err
	}
	if err := uc.bw.Flush(); err != nil {
		return nil, err
	}
	for {
		resp, err := http.ReadResponse(uc.br, r)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		// 1xx interim responses are not relayed on this path.
	}
}

// pooledBody returns its connection to the pool once the body has been read through.
type pooledBody struct {
	rc       io.ReadCloser
	uc       *upstreamConn
	ep       *Endpoint
	c        *Clients
	reusable bool
	once     sync.Once
	eof      bool
}

func (b *pooledBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof = true
		b.release()
	}
	return n, err
}

func (b *pooledBody) Close() error {
	if !b.eof {
		b.reusable = false
	}
	b.release()
	return nil
}

func (b *pooledBody) release() {
	b.once.Do(func() {
		if b.reusable && b.uc.br.Buffered() == 0 {
			b.ep.pool.put(b.c, b.uc, time.Now())
		} else {
			b.uc.conn.Close()
		}
	})
}
