package h2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestCreditDuringOwnWriteNotLost is the interleaving that hung senders with smaller stream
// windows (issue 28): a stream out of send window first writes the frames pending, with
// the writer's lock released; a WINDOW_UPDATE handled during that write wakes nobody, as
// nobody waits yet. The sender must find the credit when the write returns, not wait for
// one more that the peer, having read everything, never sends.
func TestCreditDuringOwnWriteNotLost(t *testing.T) {
	near, far := net.Pipe()
	defer near.Close()
	defer far.Close()
	far.SetDeadline(time.Now().Add(30 * time.Second)) // a lost credit fails, not hangs
	w := newFrameWriter(near)
	st := &serverStream{id: 1}
	sc := &serverConn{w: w, streams: map[uint32]*serverStream{1: st}, lastID: 1}
	st.sc = sc
	body := []byte("the body that waited for credit")
	sent := make(chan error, 1)
	go func() {
		w.lock()
		w.err = w.fr.WritePing(false, [8]byte{1}) // pending when the window runs out
		err := w.data(1, &st.send, body, true)    // no window: writes the PING, then waits
		w.unlock()
		sent <- err
	}()
	// The PING's write has started (net.Pipe: it returns once all is read), the lock
	// released: the credit arrives now.
	first := make([]byte, 1)
	if _, err := io.ReadFull(far, first); err != nil {
		t.Fatal(err)
	}
	wu := &http2.WindowUpdateFrame{FrameHeader: http2.FrameHeader{Type: http2.FrameWindowUpdate, StreamID: 1}, Increment: uint32(len(body))}
	if err := sc.onWindowUpdate(wu); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(nil, io.MultiReader(bytes.NewReader(first), far))
	if f, err := fr.ReadFrame(); err != nil {
		t.Fatal(err)
	} else if _, ok := f.(*http2.PingFrame); !ok {
		t.Fatalf("first frame %v, want the pending PING", f)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatalf("no DATA after the stream was credited during the sender's own write (credit lost): %v", err)
	}
	d, ok := f.(*http2.DataFrame)
	if !ok || !bytes.Equal(d.Data(), body) || !d.StreamEnded() {
		t.Fatalf("got %v, want the body's DATA ending the stream", f)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// smallWindows are the receive windows of the real HTTP/2 peers below: 65,535 bytes per
// stream and per connection, RFC 9113's initial window and what Linkerd's proxy announces
// per stream, so that every large body waits for credit many times over.
var smallWindows = &http.HTTP2Config{MaxReceiveBufferPerStream: 65535, MaxReceiveBufferPerConnection: 65535}

// h2cProtocols is unencrypted HTTP/2 only, for net/http's client and server.
func h2cProtocols() *http.Protocols {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &p
}

// streamingEcho copies the request body to the response as it arrives, so that both
// directions flow at once.
func streamingEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		buf := make([]byte, 20000) // not a frame's size: reads and frames do not line up
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// echoMany sends streams concurrent requests of size bytes each through rt and checks
// that each comes back whole.
func echoMany(t *testing.T, rt http.RoundTripper, base string, streams, size int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := framePattern(i, size)
			req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/%d", base, i), bytes.NewReader(body))
			resp, err := rt.RoundTrip(req)
			if err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
				return
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || sha256.Sum256(got) != sha256.Sum256(body) {
				errs <- fmt.Errorf("stream %d: %d bytes back of %d (%v)", i, len(got), size, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestTransportSendsWithinSmallWindows: request bodies far larger than a net/http server's
// 65,535-byte stream and connection windows, many at once on one connection, all arrive
// and come back (the server echoes as it reads).
func TestTransportSendsWithinSmallWindows(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: streamingEcho(), Protocols: h2cProtocols(), HTTP2: smallWindows}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	tr := tcpTransport()
	t.Cleanup(tr.CloseIdleConnections)
	for range rounds() {
		echoMany(t, tr, "http://"+ln.Addr().String(), 16, 1<<20)
	}
}

// TestServerSendsWithinSmallWindows: responses far larger than a net/http client's
// 65,535-byte stream and connection windows, many at once on one connection, all arrive
// whole, while their requests' bodies still flow the other way.
func TestServerSendsWithinSmallWindows(t *testing.T) {
	base := "http://" + serve(t, &Server{Handler: streamingEcho()})
	tr := &http.Transport{Protocols: h2cProtocols(), HTTP2: smallWindows}
	t.Cleanup(tr.CloseIdleConnections)
	for range rounds() {
		echoMany(t, tr, base, 16, 1<<20)
	}
}

// rounds is how many times the small-window tests repeat: a lost wakeup needs an unlucky
// interleaving, which every round gives many chances (each body waits for credit about
// sixteen times); fewer rounds under the race detector, which is slower.
func rounds() int {
	if raceEnabled {
		return 2
	}
	return 5
}

// smallBuffers shrinks c's socket buffers, so that a peer that stops reading soon
// blocks the other side's writes.
func smallBuffers(c net.Conn) net.Conn {
	tc := c.(*net.TCPConn)
	tc.SetReadBuffer(32 << 10)
	tc.SetWriteBuffer(32 << 10)
	return c
}

// TestBothWaysWithFullSocketBuffers: bodies flowing both ways on many streams at once,
// over a connection whose socket buffers hold little, all arrive. Each side's writes
// block until the other reads; a read loop that waited for its own side's writes (to
// take a WINDOW_UPDATE, say) while the other's did the same would stop both for good.
func TestBothWaysWithFullSocketBuffers(t *testing.T) {
	addr := serveWrapped(t, &Server{Handler: streamingEcho()}, smallBuffers)
	d := net.Dialer{}
	tr := &Transport{Connect: func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return smallBuffers(c), nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	for range rounds() {
		echoMany(t, tr, "http://"+addr, 16, 1<<20)
	}
}
