package h2

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
)

// countingConn counts the Write calls reaching a connection.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// ping appends one PING frame through w's lock and unlock (which may write).
func ping(w *frameWriter, n byte) {
	w.lock()
	w.err = w.fr.WritePing(false, [8]byte{n})
	w.unlock()
}

// TestWritesShareSystemCalls: while one write is blocked in the connection, other
// writers neither wait for it nor write themselves; what they added goes out in one
// further write once the first returns.
func TestWritesShareSystemCalls(t *testing.T) {
	near, far := net.Pipe()
	defer near.Close()
	defer far.Close()
	conn := &countingConn{Conn: near}
	w := newFrameWriter(conn)
	first := make(chan struct{})
	go func() { ping(w, 0); close(first) }() // blocks in Write: nobody reads yet
	// The first write has started once the connection saw its call.
	frame := make([]byte, 9+8)
	if _, err := io.ReadFull(far, frame[:1]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 1; i <= 10; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); ping(w, byte(i)) }()
	}
	wg.Wait() // all ten returned while the first write is still blocked
	if n := conn.writes.Load(); n != 1 {
		t.Fatalf("%d writes reached the connection while the first was blocked, want 1", n)
	}
	fr := http2.NewFramer(nil, io.MultiReader(bytes.NewReader(frame[:1]), far))
	seen := map[byte]bool{}
	for range 11 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		seen[f.(*http2.PingFrame).Data[0]] = true
	}
	<-first
	if len(seen) != 11 {
		t.Fatalf("got pings %v, want 0-10", seen)
	}
	if n := conn.writes.Load(); n != 2 {
		t.Fatalf("%d writes for 11 frames, want 2 (the first, then the ten added meanwhile)", n)
	}
}

// TestPendingFramesBounded: a peer that does not read makes writers wait once
// maxPending bytes are pending, rather than buffering without bound.
func TestPendingFramesBounded(t *testing.T) {
	near, far := net.Pipe()
	defer near.Close()
	w := newFrameWriter(near)
	const frames = 2 * maxPending / (9 + 8)
	var done atomic.Int32
	// One goroutine's write blocks (nobody reads beyond its first byte); another keeps
	// adding frames.
	go ping(w, 0)
	if _, err := io.ReadFull(far, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := range frames - 1 {
			ping(w, byte(i))
			done.Add(1)
		}
	}()
	// Poll until the writer is held back by a full pending buffer.
	for {
		w.mu.Lock()
		full := w.writing && len(w.out) >= maxPending
		pending := len(w.out)
		w.mu.Unlock()
		if pending > maxPending+9+8 {
			t.Fatalf("%d bytes pending, bound %d", pending, maxPending)
		}
		if full {
			break
		}
		if done.Load() == frames-1 {
			t.Fatal("every frame was taken although nobody reads")
		}
		runtime.Gosched()
	}
	// Reading releases it: every frame arrives.
	n, err := io.Copy(io.Discard, io.LimitReader(far, frames*(9+8)-1))
	if err != nil || n != frames*(9+8)-1 {
		t.Fatalf("read %d bytes (%v), want %d", n, err, frames*(9+8)-1)
	}
	far.Close()
}

// frameSink is a connection whose writes succeed at once and keep the bytes written.
type frameSink struct {
	net.Conn
	buf bytes.Buffer
}

func (c *frameSink) Write(b []byte) (int, error) { return c.buf.Write(b) }

// TestLargeBodiesReuseBuffers: carrying 1 MiB costs no allocation per frame on either
// side. Sending, the pending buffers come from a pool and go back after each write
// (before, every batch grew a new buffer past maxPending and dropped it: 64 allocations,
// ~3 MB, per MiB sent); receiving, frame-sized chunks are pooled buffers given back once
// read (before, one allocation per frame).
// The frames sent are read back as one DATA frame stream.
func TestLargeBodiesReuseBuffers(t *testing.T) {
	sink := &frameSink{}
	w := newFrameWriter(sink)
	body := bytes.Repeat([]byte("x"), 1<<20)
	sw := &sendWindow{}
	send := func() {
		w.lock()
		w.connSend, sw.window = 1<<30, 1<<30
		if err := w.data(1, sw, body, true); err != nil {
			t.Fatal(err)
		}
		w.unlock()
	}
	send()
	fr := http2.NewFramer(nil, bytes.NewReader(sink.buf.Bytes()))
	got := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		d := f.(*http2.DataFrame)
		if d.StreamID != 1 || len(d.Data()) > maxSendFrame {
			t.Fatalf("DATA frame of stream %d with %d bytes", d.StreamID, len(d.Data()))
		}
		got += len(d.Data())
		if d.StreamEnded() {
			break
		}
	}
	if got != len(body) {
		t.Fatalf("read %d bytes back, sent %d", got, len(body))
	}
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers: allocations not counted")
	}
	sink.buf.Reset()
	if n := testing.AllocsPerRun(20, func() { send(); sink.buf.Reset() }); n > 2 {
		t.Errorf("sending 1 MiB made %.0f allocations, want at most 2", n)
	}

	var p recvPipe
	p.init(nil)
	frame := body[:maxSendFrame]
	out := make([]byte, len(frame))
	if n := testing.AllocsPerRun(20, func() {
		for range len(body) / len(frame) {
			p.push(&dataIn{data: frame})
			if _, err := io.ReadFull(&p, out[:len(frame)]); err != nil {
				t.Fatal(err)
			}
		}
	}); n > 2 {
		t.Errorf("receiving 1 MiB in %d-byte frames made %.0f allocations, want at most 2", len(frame), n)
	}
}

// TestYieldsOnlyWithFramesToWrite: with several streams under way, the goroutine starting
// a write yields once for the others to add their frames; taking and releasing the lock
// without adding any (to read a window, mark a stream reset) writes and yields nothing.
func TestYieldsOnlyWithFramesToWrite(t *testing.T) {
	var yields atomic.Int32
	conn := &countingConn{Conn: &frameSink{}}
	w := newFrameWriter(conn)
	w.yield = func() { yields.Add(1); runtime.Gosched() }
	w.streams.Store(2)
	for range 3 {
		w.lock()
		w.cond.Broadcast()
		w.unlock()
	}
	if n, m := yields.Load(), conn.writes.Load(); n != 0 || m != 0 {
		t.Fatalf("lock and unlock with nothing to write: %d yields, %d writes; want none", n, m)
	}
	ping(w, 1)
	if n, m := yields.Load(), conn.writes.Load(); n != 1 || m != 1 {
		t.Fatalf("one frame with two streams under way: %d yields, %d writes; want 1 and 1", n, m)
	}
	w.streams.Store(1)
	ping(w, 2)
	if n, m := yields.Load(), conn.writes.Load(); n != 1 || m != 2 {
		t.Fatalf("one frame of a lone stream: %d yields in all, %d writes; want no further yield, 2 writes", n, m)
	}
}

// TestResponseBodyBufferPooled: a handler's response body is buffered in a pooled chunk,
// not in a slice allocated (and grown) per response: 8 KiB responses cost well under
// 8 KiB of allocation per request, both ends together.
func TestResponseBodyBufferPooled(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers: allocations not counted")
	}
	body := bytes.Repeat([]byte("y"), 8<<10)
	tr, base := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(body); i += 1 << 10 { // in pieces, as a relayed body comes
			w.Write(body[i : i+1<<10])
		}
	}))
	get := func() {
		req, _ := http.NewRequest("GET", base+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(len(body)) {
			t.Fatalf("read %d bytes (%v), want %d", n, err, len(body))
		}
	}
	for range 10 {
		get() // connection, pools and buffers warmed up
	}
	const requests = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range requests {
		get()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / requests; per >= uint64(len(body)) {
		t.Errorf("%d bytes allocated per request with an 8 KiB response, want less than 8 KiB", per)
	}
}

// TestControlFramesHaveHeadroom: with the pending buffer full of frames waiting for a peer
// that does not read, a control frame (lockControl: a read loop's acknowledgement) is
// still added, up to controlHeadroom more bytes, and no further.
func TestControlFramesHaveHeadroom(t *testing.T) {
	near, far := net.Pipe()
	defer near.Close()
	defer far.Close()
	w := newFrameWriter(near)
	go ping(w, 0) // its write blocks: nobody reads beyond the first byte
	if _, err := io.ReadFull(far, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	// Data writers (lock) fill the pending buffer and then wait.
	go func() {
		for i := range 2 * maxPending / (9 + 8) {
			ping(w, byte(i))
		}
	}()
	pending := func() (int, bool) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.out), w.writing
	}
	for {
		n, writing := pending()
		if writing && n >= maxPending {
			break
		}
		runtime.Gosched()
	}
	// A read loop's acknowledgements still go in, up to the headroom.
	const acks = 2 * controlHeadroom / (9 + 8)
	var added atomic.Int32
	go func() {
		for range acks {
			w.lockControl()
			w.fr.WritePing(true, [8]byte{1})
			w.unlock()
			added.Add(1)
		}
	}()
	for {
		n, _ := pending()
		if n > maxPending+controlHeadroom+9+8 {
			t.Fatalf("%d bytes pending, bound %d", n, maxPending+controlHeadroom)
		}
		if n >= maxPending+controlHeadroom {
			break
		}
		if added.Load() == acks {
			t.Fatal("every acknowledgement was taken although nobody reads")
		}
		runtime.Gosched()
	}
	if a := added.Load(); a == 0 {
		t.Fatal("no acknowledgement was added past a pending buffer full of data")
	}
}
