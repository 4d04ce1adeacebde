package h2

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// serve runs srv on a loopback listener and returns its address.
func serve(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); srv.ServeConn(ctx, c) }()
		}
	}()
	return ln.Addr().String()
}

// forwarder relays every request to target with tr the way proxy/forward does: the
// server's request itself (its Trailer map included) is sent on.
func forwarder(tr *Transport, target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Host, r.URL.Scheme, r.RequestURI = target, "http", ""
		resp, err := tr.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vv := range resp.Header {
			w.Header()[k] = vv
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		for k, vv := range resp.Trailer {
			w.Header()[http.TrailerPrefix+k] = vv
		}
	})
}

// rawClient speaks HTTP/2 frame by frame, ignoring flow control and stream limits, as a
// hostile client would.
type rawClient struct {
	t    testing.TB
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

// dialRaw connects to addr, sends the preface and an empty SETTINGS frame. Every read and
// write is bounded by a deadline so that a stuck server fails the test instead of hanging.
func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	rc := &rawClient{t: t, c: c, fr: http2.NewFramer(c, c)}
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.fr.MaxHeaderListSize = 1 << 20
	rc.henc = hpack.NewEncoder(&rc.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return rc
}

// block encodes name/value pairs as one header block.
func (rc *rawClient) block(pairs ...string) []byte {
	rc.hbuf.Reset()
	for i := 0; i+1 < len(pairs); i += 2 {
		rc.henc.WriteField(hpack.HeaderField{Name: pairs[i], Value: pairs[i+1]})
	}
	return append([]byte(nil), rc.hbuf.Bytes()...)
}

// headers sends one HEADERS frame with the given fields; write errors are returned (the
// server may have closed the connection).
func (rc *rawClient) headers(id uint32, end bool, pairs ...string) error {
	return rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.block(pairs...), EndStream: end, EndHeaders: true})
}

// request sends a request's HEADERS frame for path with extra fields.
func (rc *rawClient) request(id uint32, method, path string, end bool, extra ...string) error {
	pairs := append([]string{":method", method, ":scheme", "http", ":authority", "test.example", ":path", path}, extra...)
	return rc.headers(id, end, pairs...)
}

// outcome is what a raw client learnt from the server about its streams.
type outcome struct {
	status  map[uint32]string        // :status of each answered stream
	resets  map[uint32]http2.ErrCode // RST_STREAM received per stream
	goAway  *http2.GoAwayFrame
	ended   map[uint32]bool // streams whose response ended
	data    map[uint32]int  // response body bytes per stream
	readErr error           // why reading stopped (io.EOF: the server closed)
}

// read reads frames until done reports true, the server closes the connection or the
// deadline passes, and returns what it saw.
func (rc *rawClient) read(done func(o *outcome) bool) *outcome {
	o := &outcome{status: map[uint32]string{}, resets: map[uint32]http2.ErrCode{}, ended: map[uint32]bool{}, data: map[uint32]int{}}
	for !done(o) {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			o.readErr = err
			return o
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if v := f.PseudoValue("status"); v != "" {
				o.status[f.StreamID] = v
			}
			if f.StreamEnded() {
				o.ended[f.StreamID] = true
			}
		case *http2.DataFrame:
			o.data[f.StreamID] += len(f.Data())
			if f.StreamEnded() {
				o.ended[f.StreamID] = true
			}
		case *http2.RSTStreamFrame:
			o.resets[f.StreamID] = f.ErrCode
		case *http2.GoAwayFrame:
			g := *f
			o.goAway = &g
		case *http2.PingFrame:
			if !f.IsAck() {
				rc.fr.WritePing(true, f.Data)
			}
		}
	}
	return o
}

// closed reports whether the server closed the connection (or the read failed).
func (o *outcome) closed() bool { return o.readErr != nil }

// TestRequestTrailersHandedOverAtEOF: a client declaring request trailers and sending a
// large trailer block on many streams, to a server whose handler forwards the request
// itself with the Transport (as the proxy does), must not make the read loop write the
// request's Trailer map while the forwarding side reads it (issue 27: "concurrent map
// iteration and map write" killed the process; go test -race reports it). The declared
// trailer values still reach the far end.
func TestRequestTrailersHandedOverAtEOF(t *testing.T) {
	backend, base := start(t, echo())
	front := serve(t, &Server{Handler: forwarder(backend, strings.TrimPrefix(base, "http://"))})
	rc := dialRaw(t, front)
	const streams = 200
	trailers := []string{"req-trailer", "v", "x-a", "1", "x-b", "2"}
	for i := range 60 {
		trailers = append(trailers, fmt.Sprintf("x-undeclared-%d", i), strings.Repeat("v", 20))
	}
	go func() {
		for i := range streams {
			id := uint32(2*i + 1)
			if rc.request(id, "POST", "/t", false, "trailer", "req-trailer, x-a, x-b") != nil {
				return
			}
			if rc.fr.WriteData(id, false, []byte("body")) != nil {
				return
			}
			if rc.headers(id, true, trailers...) != nil {
				return
			}
		}
	}()
	o := rc.read(func(o *outcome) bool { return len(o.ended)+len(o.resets) == streams })
	if o.closed() {
		t.Fatalf("server closed the connection after %d streams: %v", len(o.ended), o.readErr)
	}
	for id, code := range o.resets {
		t.Errorf("stream %d reset: %v", id, code)
	}
	for id, st := range o.status {
		if st != "200" {
			t.Errorf("stream %d: status %s", id, st)
		}
	}
}

// TestRequestTrailersVisibleAtEOF: the handler sees declared trailer names before the
// body is read and their values once it reads EOF; undeclared trailer fields are dropped
// and trailers sent twice, without END_STREAM or with pseudo-header fields are refused.
func TestRequestTrailersVisibleAtEOF(t *testing.T) {
	type seen struct{ before, after string }
	got := make(chan seen, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s seen
		s.before = fmt.Sprint(r.Trailer)
		io.Copy(io.Discard, r.Body)
		s.after = fmt.Sprint(r.Trailer)
		got <- s
	})
	rc := dialRaw(t, serve(t, &Server{Handler: h}))
	rc.request(1, "POST", "/", false, "trailer", "x-a")
	rc.fr.WriteData(1, false, []byte("b"))
	rc.headers(1, true, "x-a", "1", "x-other", "2")
	s := <-got
	if s.before != "map[X-A:[]]" || s.after != "map[X-A:[1]]" {
		t.Fatalf("trailers before EOF %s, after %s; want map[X-A:[]] then map[X-A:[1]]", s.before, s.after)
	}
	// Trailers without END_STREAM, with a pseudo-header or with a forbidden field name.
	rc.request(3, "POST", "/", false, "trailer", "x-a")
	rc.headers(3, false, "x-a", "1")
	rc.request(5, "POST", "/", false, "trailer", "x-a")
	rc.headers(5, true, ":path", "/x", "x-a", "1")
	rc.request(7, "POST", "/", false, "trailer", "content-length")
	rc.headers(7, true, "content-length", "1")
	o := rc.read(func(o *outcome) bool { return len(o.resets) == 3 })
	for _, id := range []uint32{3, 5, 7} {
		if o.resets[id] != http2.ErrCodeProtocol {
			t.Errorf("stream %d: reset %v, want PROTOCOL_ERROR (%v)", id, o.resets[id], o)
		}
	}
	// HEADERS after the client's side ended: STREAM_CLOSED, the connection survives.
	block := make(chan struct{})
	defer close(block)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body); <-block })
	rc = dialRaw(t, serve(t, &Server{Handler: slow}))
	rc.request(1, "POST", "/", false, "trailer", "x-a")
	rc.headers(1, true, "x-a", "1")
	rc.headers(1, true, "x-a", "2")
	o = rc.read(func(o *outcome) bool { return len(o.resets) > 0 || o.goAway != nil })
	if o.resets[1] != http2.ErrCodeStreamClosed && (o.goAway == nil || o.goAway.ErrCode != http2.ErrCodeProtocol) {
		t.Fatalf("second trailers: %+v, want STREAM_CLOSED or a PROTOCOL_ERROR GOAWAY", o)
	}
}

