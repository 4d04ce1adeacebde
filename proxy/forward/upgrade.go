package forward

import (
	"bufio"
	"io"
	"net/http"
	"time"

	"github.com/l5d-go/l5d/proxy/metrics"
)

// serveUpgrade completes a protocol switch (WebSocket and the like): it hijacks the
// client connection, relays the 101 response and then copies bytes both ways until both
// sides are done.
func (h *Handler) serveUpgrade(w http.ResponseWriter, resp *http.Response, m *metrics.HTTP, start time.Time) {
	backend, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		h.failUpgrade(w, m, start, &RouteError{Status: http.StatusBadGateway, Reason: "upgrade response has no connection"})
		return
	}
	defer backend.Close()
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.failUpgrade(w, m, start, &RouteError{Status: http.StatusBadGateway, Reason: "client connection cannot switch protocols"})
		return
	}
	defer client.Close()
	resp.Body = nil
	if err := resp.Write(brw); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	m.Response(resp.StatusCode, false, time.Since(start))

	// As soon as either direction ends, both connections close (the deferred Closes),
	// which also ends the other direction: upgraded protocols do not rely on half-close.
	done := make(chan struct{}, 2)
	go func() {
		// Client to backend, starting with anything the client sent after its request.
		copyBuffered(backend, brw.Reader)
		done <- struct{}{}
	}()
	go func() {
		bp := bufPool.Get().(*[]byte)
		io.CopyBuffer(client, backend, *bp)
		bufPool.Put(bp)
		done <- struct{}{}
	}()
	<-done
}

func copyBuffered(dst io.Writer, src *bufio.Reader) {
	bp := bufPool.Get().(*[]byte)
	io.CopyBuffer(dst, src, *bp)
	bufPool.Put(bp)
}

func (h *Handler) failUpgrade(w http.ResponseWriter, m *metrics.HTTP, start time.Time, err error) {
	status, reason := StatusFor(err)
	w.Header().Set(HeaderProxyError, reason)
	w.WriteHeader(status)
	m.Response(status, true, time.Since(start))
}
