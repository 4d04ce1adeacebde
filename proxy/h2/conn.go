// Package h2 is the proxy's own HTTP/2 connection handling, for the hop between proxies
// where every request crosses one shared connection: a client Transport (an
// http.RoundTripper) and a server that feeds an http.Handler.
//
// It exists for speed. Frames from all streams of a connection are appended to one
// buffer, written by whichever stream finds no write in progress; frames added during a
// write go out with the next, so concurrent requests share write system calls; the reading side decodes frames on one goroutine per
// connection and hands them to streams without further goroutines. Flow control follows
// RFC 9113: sends wait for the peer's connection and stream windows, and receive windows
// are replenished as the application consumes data.
package h2

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/l5d-go/l5d/proxy/internal/relaybuf"
)

// Window sizes this package announces: a stream may have 256 KiB unread, a connection 32 MiB.
// A stream's window of 256 KiB keeps four 64 KiB relay reads in flight between proxies while a
// response for a slow reader holds at most that much in the proxy (4 MiB held whole bodies).
const (
	streamWindow  = 256 << 10
	connWindow    = 32 << 20
	maxFrameRead  = 1 << 20
	maxHeaderList = 1 << 20
	// creditBatch is how much consumed data is acknowledged in one WINDOW_UPDATE.
	creditBatch = 64 << 10
	// readBufSize buffers a connection's input so that the frames of one TLS record
	// (or one read) are decoded without further calls into the connection.
	readBufSize = 16 << 10
	// maxWindow is the largest flow-control window RFC 9113 (section 6.9.1) allows.
	maxWindow = 1<<31 - 1
	// maxSettings is how many parameters one SETTINGS frame may carry, as x/net/http2
	// accepts.
	maxSettings = 100
)

// checkSettings validates a received SETTINGS frame: at most maxSettings parameters,
// none repeated (x/net/http2's limits) and each within the range RFC 9113 section 6.5.2
// gives it. It returns the code of the connection error to answer a bad one with.
func checkSettings(f *http2.SettingsFrame) (http2.ErrCode, error) {
	if f.NumSettings() > maxSettings || f.HasDuplicates() {
		return http2.ErrCodeProtocol, errors.New("SETTINGS with too many or repeated parameters")
	}
	code := http2.ErrCodeNo
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			var ce http2.ConnectionError
			code = http2.ErrCodeProtocol
			if errors.As(err, &ce) {
				code = http2.ErrCode(ce)
			}
			return fmt.Errorf("invalid setting %v", s)
		}
		return nil
	})
	return code, err
}

// connectionSpecific reports whether a received header field makes a message malformed
// in HTTP/2 (RFC 9113 section 8.2.2): connection-specific fields, and "te" other than
// "trailers".
func connectionSpecific(name, value string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	case "te":
		return value != "trailers"
	}
	return false
}

// inflow is a receive window: what the peer may still send before we acknowledge more.
// The reading side takes from it, the side acknowledging consumed bytes gives back to it
// before sending the WINDOW_UPDATE.
type inflow struct{ n atomic.Int64 }

// take reports whether n bytes fit in the window, and takes them.
func (f *inflow) take(n uint32) bool { return f.n.Add(-int64(n)) >= 0 }

// give returns n acknowledged bytes to the window.
func (f *inflow) give(n int64) { f.n.Add(n) }

// frameBuffered reports whether br holds a complete frame, which ReadFrame then returns
// without blocking.
func frameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 9 {
		return false
	}
	h, _ := br.Peek(9)
	return n >= 9+(int(h[0])<<16|int(h[1])<<8|int(h[2]))
}

// frameIn reads a connection's frames as fr.ReadFrame does (fr reads from br), except
// that the payload of a DATA frame that fills a pooled chunk (minPooledChunk to largeChunkSize
// bytes, without padding) is read from br straight into the chunk, which the stream's body
// then keeps: one copy of each received byte fewer than through the Framer's buffer.
type frameIn struct {
	fr   *http2.Framer
	br   *bufio.Reader
	fill *headerFill // under br
	// bulk: the last frame was a DATA frame read straight from the connection into its
	// chunk (see headerFill).
	bulk bool
	data dataIn // the DATA frame last returned
}

// newFrameIn returns the frame reader of a connection read from conn.
func newFrameIn(conn io.Reader) *frameIn {
	fill := &headerFill{r: conn}
	br := bufio.NewReaderSize(fill, readBufSize)
	fr := http2.NewFramer(nil, br)
	fr.SetMaxReadFrameSize(maxFrameRead)
	fr.SetReuseFrames() // frames are handled before the next read (DATA is copied)
	return &frameIn{fr: fr, br: br, fill: fill}
}

// headerFill is the reader under a connection's bufio.Reader. While on, a read asks the
// connection for no more than a frame header: after a large DATA frame read straight into
// its chunk, the next frame's header is read alone, so that when it is another large
// DATA frame all of its payload is read straight into its chunk too, none of it (a TLS
// record's worth, a quarter of a 64 KiB frame) copied into the buffer and out again. A
// run of large DATA frames costs no more system calls (over TCP the header's read
// replaces the buffer's fill; over TLS the extra Read takes the header from a record
// already opened); a small frame after a large one takes one read more.
type headerFill struct {
	r  io.Reader
	on bool
}

func (h *headerFill) Read(p []byte) (int, error) {
	if h.on && len(p) > frameHeaderLen {
		p = p[:frameHeaderLen]
	}
	return h.r.Read(p)
}

// dataIn is a received DATA frame: its header and its data, without padding.
type dataIn struct {
	http2.FrameHeader
	data []byte
	// chunk: data is a pooled chunk (see copyChunk) that whoever keeps it takes over
	// (recvPipe.push); release gives it back otherwise.
	chunk bool
}

// release gives back the frame's chunk, unless a body took it.
func (d *dataIn) release() {
	if d.chunk {
		d.chunk = false
		releaseChunk(d.data)
	}
	d.data = nil
}

// next returns the next frame: a DATA frame as d (valid until the next call, its chunk
// released by the caller), any other as f (valid until the next call, as ReadFrame's).
// Its errors are ReadFrame's.
func (r *frameIn) next() (f http2.Frame, d *dataIn, err error) {
	r.fill.on = r.bulk && r.br.Buffered() == 0
	fh, err := r.fr.ReadFrameHeader()
	r.fill.on, r.bulk = false, false
	if err != nil {
		return nil, nil, err
	}
	if fh.Type == http2.FrameData && fh.StreamID != 0 && !fh.Flags.Has(http2.FlagDataPadded) &&
		fh.Length >= minPooledChunk && fh.Length <= largeChunkSize {
		c := getChunk(int(fh.Length))
		if _, err := io.ReadFull(r.br, c); err != nil {
			releaseChunk(c)
			return nil, nil, err
		}
		// bufio reads a frame of its buffer's size or more straight into the chunk.
		r.bulk = fh.Length >= readBufSize
		r.data = dataIn{FrameHeader: fh, data: c, chunk: true}
		return nil, &r.data, nil
	}
	f, err = r.fr.ReadFrameForHeader(fh)
	if df, ok := f.(*http2.DataFrame); ok && err == nil {
		r.data = dataIn{FrameHeader: df.FrameHeader, data: df.Data()}
		return nil, &r.data, nil
	}
	return f, nil, err
}

// errConnClosed is returned for streams of a connection that went away.
var errConnClosed = errors.New("h2: connection closed")

// frameWriter serialises frame writes on one connection. Writers take the lock with
// lock, append frames to a pending buffer and release the lock with unlock, which writes
// the pending frames to the connection unless another goroutine is already writing: that
// one writes them, together with whatever else was added meanwhile, before it returns.
// The goroutine starting a write yields the processor once first, so that streams woken
// by the same input add their frames to the same write; the others never wait for the
// write system call, which is made without the lock held. The pending buffer is
// bounded: past maxPending bytes, writers wait for the write in progress (a peer that
// does not read stalls its own connection and no more).
type frameWriter struct {
	mu   sync.Mutex
	cond sync.Cond // send windows changed (or the connection failed)
	// room is signalled when a write system call returns, for writers waiting for the
	// pending buffer to drain; roomWaiters counts them.
	room        sync.Cond
	roomWaiters int
	conn        io.Writer
	out         []byte      // pending frames, in order
	outBuf      *pendingBuf // where out came from (nil while out is nil)
	writing     bool        // a goroutine is writing out to conn (outside mu)
	// streams counts the connection's streams under way (requests sent and not finished
	// on the client, handlers running on the server): a goroutine starting a write yields
	// for others to add their frames only when another stream could have some.
	streams atomic.Int32
	yield   func() // runtime.Gosched (tests count the calls)
	fr      *http2.Framer
	henc    *hpack.Encoder
	hbuf    bytes.Buffer
	enc     func(name, value string) // encodes one field into hbuf
	err     error

	// Send flow control (guarded by mu).
	connSend      int64
	initialWindow int32
	maxFrame      int
}

const (
	// maxPending bounds the frames waiting for the write in progress; writers past it
	// wait for that write to return.
	maxPending = 64 << 10
	// maxSendFrame bounds the DATA frames sent, whatever larger size the peer accepts (a
	// peer announcing less gets frames within its SETTINGS_MAX_FRAME_SIZE): a relay read of
	// 64 KiB goes out as one frame, and the pending buffer stays small.
	maxSendFrame = 64 << 10
	// frameHeaderLen is the size of a frame header (RFC 9113 section 4.1).
	frameHeaderLen = 9
	// pendingCap is the capacity of a pending buffer: what writers may add before they
	// wait (maxPending), plus the DATA frame that crosses it.
	pendingCap = maxPending + frameHeaderLen + maxSendFrame
)

// pendingBuf is a pending buffer between batches, in pendingPool. Connections take one
// when they have frames to write and give it back once those are written, so that a
// busy connection does not grow a new buffer for every batch and an idle one holds none.
type pendingBuf struct{ b []byte }

var pendingPool = sync.Pool{New: func() any { return &pendingBuf{b: make([]byte, 0, pendingCap)} }}

// pending returns the pending buffer, taking one from the pool when there is none. The
// caller holds the lock.
func (w *frameWriter) pending() []byte {
	if w.outBuf == nil {
		w.outBuf = pendingPool.Get().(*pendingBuf)
		w.out = w.outBuf.b[:0]
	}
	return w.out
}

func newFrameWriter(c net.Conn) *frameWriter {
	w := &frameWriter{conn: c, connSend: 65535, initialWindow: 65535, maxFrame: 16384, yield: runtime.Gosched}
	w.cond.L = &w.mu
	w.room.L = &w.mu
	w.fr = http2.NewFramer((*pendingWriter)(w), nil)
	w.henc = hpack.NewEncoder(&w.hbuf)
	w.enc = func(name, value string) { w.henc.WriteField(hpack.HeaderField{Name: name, Value: value}) }
	return w
}

// pendingWriter is the frameWriter as the Framer's io.Writer: frames are appended to the
// pending buffer (the caller holds the lock).
type pendingWriter frameWriter

func (p *pendingWriter) Write(b []byte) (int, error) {
	w := (*frameWriter)(p)
	w.out = append(w.pending(), b...)
	return len(b), nil
}

// lock takes the writer's lock, waiting while the pending buffer is full and being written.
func (w *frameWriter) lock() { w.lockBelow(maxPending) }

// lockBelow takes the writer's lock, waiting while a write is in progress and bound bytes
// or more are pending.
func (w *frameWriter) lockBelow(bound int) {
	w.mu.Lock()
	for w.writing && len(w.out) >= bound && w.err == nil {
		w.roomWaiters++
		w.room.Wait()
		w.roomWaiters--
	}
}

// lockState takes the writer's lock to read or update state only (a send window),
// without waiting for room in the pending buffer as lock does; unlockState releases it.
// The read loop takes WINDOW_UPDATEs with it: had it waited for its own side's write in
// progress, blocked by a peer whose read loop waited in the same way, both connections'
// read loops would stop for good (bodies both ways over full socket buffers did).
func (w *frameWriter) lockState() { w.mu.Lock() }

// unlockState releases the lock taken by lockState; nothing was added to write.
func (w *frameWriter) unlockState() { w.mu.Unlock() }

// controlHeadroom is how far past maxPending the connection's own small control frames
// (acknowledgements of SETTINGS and PING, WINDOW_UPDATE, RST_STREAM) may fill the
// pending buffer before their writer waits (lockControl).
const controlHeadroom = 16 << 10

// lockControl takes the writer's lock to add a control frame, waiting for room only past
// maxPending+controlHeadroom: a read loop answering its peer does not wait behind its own
// side's DATA (which may wait for a peer whose read loop waits in the same way), while a
// peer that floods frames to be answered and reads none still stalls its own connection.
// unlock releases it.
func (w *frameWriter) lockControl() { w.lockBelow(maxPending + controlHeadroom) }

// unlock writes the pending frames (unless a write is in progress, which will) and
// releases the lock.
func (w *frameWriter) unlock() {
	w.flushLocked()
	w.mu.Unlock()
}

// flushLocked writes the pending frames to the connection, batch after batch until none
// is left, unless another goroutine is already doing so. The caller holds the lock, which
// is released during each write system call and held again on return.
func (w *frameWriter) flushLocked() {
	if w.writing || len(w.out) == 0 {
		// A lock taken to read or update state (a send window, a stream's reset) writes
		// nothing, and must not yield below: that only delayed its goroutine (the read loop
		// decoding the next request, a response on its way to the client) behind every
		// other runnable one.
		return
	}
	w.writing = true
	// Let goroutines about to write (other streams of this connection, woken by the same
	// burst of input) add their frames first: they find a write in progress and return at
	// once, and all go out in one system call. Only the goroutine starting a write
	// yields, once per batch, and only when another stream is under way: a lone stream's
	// frames go out at once, behind no other goroutine's work. It pays at low rates too,
	// where requests come in bursts (fortio's 16 connections in step at 1,000 req/s):
	// without it, p50 x1.17 and CPU per request x1.2 of the proxies through the meshed pair.
	if w.streams.Load() > 1 {
		w.mu.Unlock()
		w.yield()
		w.mu.Lock()
	}
	for len(w.out) > 0 && w.err == nil {
		b, buf := w.out, w.outBuf
		w.out, w.outBuf = nil, nil
		w.mu.Unlock()
		_, err := w.conn.Write(b)
		if cap(b) <= pendingCap { // a huge header block's buffer goes to the collector
			buf.b = b[:0]
			pendingPool.Put(buf)
		}
		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = err
			w.cond.Broadcast()
		}
		if w.roomWaiters > 0 {
			w.room.Broadcast()
		}
	}
	w.writing = false
	if w.roomWaiters > 0 {
		w.room.Broadcast()
	}
}

// syncLocked writes the pending frames and waits until they are written (or the
// connection failed). The caller holds the lock.
func (w *frameWriter) syncLocked() error {
	w.flushLocked()
	for w.writing && w.err == nil {
		w.roomWaiters++
		w.room.Wait()
		w.roomWaiters--
		w.flushLocked()
	}
	return w.err
}

// raw appends bytes that are not a frame (the client's connection preface). The caller
// holds the lock.
func (w *frameWriter) raw(s string) { w.out = append(w.pending(), s...) }

// dataFrame appends a DATA frame carrying p to the pending frames, copying p once
// (straight into the buffer, where the Framer would copy it twice). The caller holds the
// lock and has checked the frame's size against the peer's limit.
func (w *frameWriter) dataFrame(id uint32, endStream bool, p []byte) {
	var flags byte
	if endStream {
		flags = byte(http2.FlagDataEndStream)
	}
	n := len(p)
	w.out = append(w.pending(), byte(n>>16), byte(n>>8), byte(n), byte(http2.FrameData), flags,
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
	w.out = append(w.out, p...)
}

// fail records a write error and wakes every stream waiting for window or room.
func (w *frameWriter) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	w.room.Broadcast()
	w.mu.Unlock()
}

// headers writes a header block for stream id (with CONTINUATION frames as needed).
// Caller holds the lock.
func (w *frameWriter) headers(id uint32, endStream bool, fields func(enc func(name, value string))) {
	if w.err != nil {
		return
	}
	w.hbuf.Reset()
	fields(w.enc)
	block := w.hbuf.Bytes()
	first := true
	for first || len(block) > 0 {
		chunk := block
		if len(chunk) > w.maxFrame {
			chunk = chunk[:w.maxFrame]
		}
		block = block[len(chunk):]
		end := len(block) == 0
		if first {
			w.err = w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: chunk, EndStream: endStream, EndHeaders: end})
			first = false
		} else {
			w.err = w.fr.WriteContinuation(id, end, chunk)
		}
		if w.err != nil {
			return
		}
	}
}

// sendWindow is a stream's send window, guarded by the writer's lock.
type sendWindow struct {
	window int64
	reset  bool
}

// data writes p on stream id as DATA frames within the flow-control windows, waiting
// (after writing what is pending) when they are exhausted, and for the pending buffer to
// drain when it is full. Caller holds the lock.
func (w *frameWriter) data(id uint32, sw *sendWindow, p []byte, endStream bool) error {
	for {
		if w.err != nil {
			return w.err
		}
		if sw.reset {
			return errStreamReset
		}
		if len(p) == 0 {
			if endStream {
				w.dataFrame(id, true, nil)
			}
			return w.err
		}
		if len(w.out) >= maxPending {
			if w.writing {
				w.roomWaiters++
				w.room.Wait()
				w.roomWaiters--
			} else {
				w.flushLocked()
			}
			continue
		}
		n := int64(len(p))
		n = min(n, w.connSend, sw.window, int64(w.maxFrame), maxSendFrame)
		if n <= 0 {
			if len(w.out) > 0 && !w.writing {
				// Our frames go out first. The lock is released during the write: a
				// WINDOW_UPDATE handled meanwhile broadcast to nobody, so the windows are
				// looked at again before waiting (waiting at once lost that credit, and
				// with it the stream, when it was the peer's last).
				w.flushLocked()
				continue
			}
			w.cond.Wait()
			continue
		}
		w.connSend -= n
		sw.window -= n
		last := int(n) == len(p)
		w.dataFrame(id, endStream && last, p[:n])
		p = p[n:]
		if last {
			return nil
		}
	}
}

var errStreamReset = errors.New("h2: stream reset by peer")

// recvPipe is a stream's received body: the connection's reader appends, the application
// reads; consumed bytes are credited back to the peer in batches.
type recvPipe struct {
	mu     sync.Mutex
	cond   sync.Cond
	chunks [][]byte
	off    int
	err    error // io.EOF at END_STREAM, or why the stream ended
	unread int
	// credit acknowledges consumed bytes: conn to the connection's window, stream (when
	// non-zero) to the stream's; called without mu held.
	credit creditor
	owed   int
	// slot backs chunks while a single chunk is queued (the common small body).
	slot [1][]byte
	// inline, when the pipe's owner sets it, holds one queued chunk of up to its
	// capacity at a time (inlineBusy), in place of a buffer of the chunk's own.
	inline     []byte
	inlineBusy bool
}

// creditor acknowledges consumed bytes to the peer (see recvPipe.credit).
type creditor interface {
	credit(conn, stream int)
}

// init prepares a pipe embedded in its stream.
func (p *recvPipe) init(credit creditor) {
	p.credit = credit
	p.cond.L = &p.mu
	p.chunks = p.slot[:0]
}

// chunkSize and largeChunkSize are the sizes of the pooled buffers that hold received DATA
// of at least minPooledChunk bytes: a frame of up to chunkSize bytes (the 16 KiB most peers
// send) takes a chunk of chunkSize, a larger one of up to largeChunkSize (what our own
// proxies send, maxSendFrame) a chunk of largeChunkSize, so that no chunk is more than four
// times the data it holds. Smaller data is copied into buffers of its own size, larger
// frames into buffers of theirs.
const (
	chunkSize      = 16 << 10
	largeChunkSize = maxSendFrame
	minPooledChunk = 4 << 10
)

var (
	chunkPool      = sync.Pool{New: func() any { return new([chunkSize]byte) }}
	largeChunkPool = sync.Pool{New: func() any { return new([largeChunkSize]byte) }}
)

// getChunk returns a pooled chunk of length n, minPooledChunk <= n <= largeChunkSize.
func getChunk(n int) []byte {
	if n <= chunkSize {
		return chunkPool.Get().(*[chunkSize]byte)[:n]
	}
	return largeChunkPool.Get().(*[largeChunkSize]byte)[:n]
}

// copyChunk returns a copy of b, in a pooled buffer when its size suits one.
func copyChunk(b []byte) []byte {
	if len(b) < minPooledChunk || len(b) > largeChunkSize {
		return append([]byte(nil), b...)
	}
	c := getChunk(len(b))
	copy(c, b)
	return c
}

// releaseChunk gives a chunk made by getChunk or copyChunk back to the pool once nothing
// refers to it.
func releaseChunk(c []byte) {
	if len(c) < minPooledChunk {
		return
	}
	switch cap(c) {
	case chunkSize:
		chunkPool.Put((*[chunkSize]byte)(c[:chunkSize]))
	case largeChunkSize:
		if len(c) > chunkSize {
			largeChunkPool.Put((*[largeChunkSize]byte)(c[:largeChunkSize]))
		}
	}
}

// release gives back the buffer of c, a chunk push queued, once it was read or dropped.
// Caller holds mu.
func (p *recvPipe) release(c []byte) {
	if p.inlineBusy && cap(c) == cap(p.inline) && cap(c) > 0 && &c[:1][0] == &p.inline[:1][0] {
		p.inlineBusy = false
		return
	}
	releaseChunk(c)
}

// push appends d's data: its chunk, which the pipe takes over, a copy in the pipe's
// inline buffer when it is free and large enough, or a copy of its own. It returns false
// when the pipe is closed and the data was dropped (d's chunk is then still d's).
func (p *recvPipe) push(d *dataIn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return false
	}
	if len(p.chunks) == 0 {
		p.chunks = p.slot[:0]
	}
	switch {
	case d.chunk:
		p.chunks = append(p.chunks, d.data)
		d.chunk = false
	case !p.inlineBusy && len(d.data) <= cap(p.inline):
		p.chunks = append(p.chunks, p.inline[:copy(p.inline[:cap(p.inline)], d.data)])
		p.inlineBusy = true
	default:
		p.chunks = append(p.chunks, copyChunk(d.data))
	}
	p.unread += len(d.data)
	p.cond.Signal()
	return true
}

// forgive counts n bytes (padding) as consumed, to be acknowledged with the next batch.
func (p *recvPipe) forgive(n int) {
	p.mu.Lock()
	p.owed += n
	p.mu.Unlock()
}

// close ends the pipe with err (io.EOF for a clean end); later pushes are dropped.
func (p *recvPipe) close(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Read implements io.Reader.
func (p *recvPipe) Read(b []byte) (int, error) {
	_, _, n, err := p.next(b, 0)
	return n, err
}

// next waits for data or the pipe's end. When the chunk at the head of the queue has from
// directWrite to most bytes left, it takes that chunk off the queue: c is its unread
// data, whole the chunk to release (under mu) once c is used. Otherwise it copies queued
// data into b as Read does (n), stopping, when most allows taking chunks, before one it
// could take. Either way the bytes count as read and are acknowledged (see consumed).
func (p *recvPipe) next(b []byte, most int64) (c, whole []byte, n int, err error) {
	p.mu.Lock()
	for len(p.chunks) == 0 && p.err == nil {
		p.cond.Wait()
	}
	if len(p.chunks) == 0 {
		err := p.err
		p.mu.Unlock()
		return nil, nil, 0, err
	}
	take := most >= directWrite
	if k := len(p.chunks[0]) - p.off; take && k >= directWrite && int64(k) <= most {
		whole = p.chunks[0]
		c = whole[p.off:]
		p.chunks[0] = nil
		p.chunks = p.chunks[1:]
		p.off = 0
		p.unread -= len(c)
		p.consumed(len(c))
		return c, whole, 0, nil
	}
	for n < len(b) && len(p.chunks) > 0 {
		if n > 0 && take && len(p.chunks[0]) >= directWrite {
			break
		}
		q := p.chunks[0][p.off:]
		k := copy(b[n:], q)
		n += k
		if k == len(q) {
			p.release(p.chunks[0])
			p.chunks[0] = nil
			p.chunks = p.chunks[1:]
			p.off = 0
		} else {
			p.off += k
		}
	}
	p.unread -= n
	p.consumed(n)
	return nil, nil, n, nil
}

// consumed counts n bytes taken from the queue as read, releases mu and acknowledges
// them: to the connection at once, to the stream once a batch is owed. Caller holds mu
// and has taken the bytes off unread.
func (p *recvPipe) consumed(n int) {
	p.owed += n
	owed := 0
	if p.owed >= creditBatch && p.err == nil {
		owed, p.owed = p.owed, 0
	}
	p.mu.Unlock()
	if p.credit != nil {
		p.credit.credit(n, owed)
	}
}

// directWrite is the least a queued chunk holds for writeTo to write it from its own
// buffer: half a relay buffer or more makes as large a write as gathering would, while
// smaller chunks (the 16 KiB frames most peers send) are gathered, several to a write.
const directWrite = relaybuf.Large / 2

// writeTo writes the body to w until its end (io.EOF, returned), an error, or, with limit
// 0 or more, limit bytes written (a nil error: the end is not waited for). A chunk of
// directWrite bytes or more at the head of the queue is written from the buffer it
// arrived in (no copy into a relay buffer, as a Read makes); smaller data is read into a
// relay buffer first, several chunks to a write (up to the next large one). A chunk is
// acknowledged to the peer when it is taken, before the write, as a Read acknowledges
// what it copies out: the stream holds its window and the chunk being written, as it
// held its window and a relay buffer.
func (p *recvPipe) writeTo(w io.Writer, limit int64) (written int64, err error) {
	var lease relaybuf.Lease
	defer lease.Release()
	for limit < 0 || written < limit {
		left := int64(math.MaxInt64)
		if limit >= 0 {
			left = limit - written
		}
		buf := lease.Bytes()
		if int64(len(buf)) > left {
			buf = buf[:left]
		}
		c, whole, n, rerr := p.next(buf, left)
		if c != nil {
			k, werr := w.Write(c)
			written += int64(k)
			p.mu.Lock()
			p.release(whole)
			p.mu.Unlock()
			if werr != nil {
				return written, werr
			}
			continue
		}
		if n > 0 {
			k, werr := w.Write(buf[:n])
			written += int64(k)
			if werr != nil {
				return written, werr
			}
		}
		lease.Read(n)
		if rerr != nil {
			return written, rerr
		}
	}
	return written, nil
}

// discard ends the pipe with err and returns how many received bytes were never read,
// so that the connection window can be credited for them.
func (p *recvPipe) discard(err error) int {
	p.mu.Lock()
	if p.err == nil || p.err == io.EOF {
		p.err = err
	}
	n := p.unread
	p.unread = 0
	for i, c := range p.chunks {
		p.release(c)
		p.chunks[i] = nil
	}
	p.chunks = p.slot[:0]
	p.slot[0] = nil
	p.cond.Broadcast()
	p.mu.Unlock()
	return n
}

// hopByHop are connection-specific fields HTTP/2 forbids.
func hopByHop(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host":
		return true
	}
	return false
}

// trailerNames joins the names of a trailer map for a "trailer" declaration.
func trailerNames(t http.Header) string {
	names := make([]string, 0, len(t))
	for k := range t {
		names = append(names, strings.ToLower(k))
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// writeHeaderFields encodes h (lower-cased names, hop-by-hop fields and trailer
// declarations left out, "te" only as "trailers" when one of its tokens is): HTTP/2 never
// carries connection-specific fields (RFC 9113 section 8.2.2).
func writeHeaderFields(enc func(name, value string), h http.Header) {
	for k, vv := range h {
		name := lowerName(k)
		if hopByHop(name) || name == "trailer" || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		if name == "te" {
			if httpguts.HeaderValuesContainsToken(vv, "trailers") {
				enc("te", "trailers")
			}
			continue
		}
		for _, v := range vv {
			enc(name, v)
		}
	}
}

var _ io.Reader = (*recvPipe)(nil)

// headerSlots is how many header values a stream holds without an allocation of their
// own: the fields of common requests and responses between proxies.
const headerSlots = 8

// fieldsHeader builds a header map from decoded fields with two allocations: the map and
// one slice holding every value slot, or only the map when buf (a stream's own array,
// which lives as long as the map's values) has room for the slots.
func fieldsHeader(fields []hpack.HeaderField, buf []string) http.Header {
	header := make(http.Header, len(fields))
	var slots []string
	if len(fields) <= cap(buf) {
		slots = buf[:len(fields)]
	} else {
		slots = make([]string, len(fields))
	}
	for i, hf := range fields {
		k := canonicalKey(hf.Name)
		slots[i] = hf.Value
		if vv, ok := header[k]; ok {
			header[k] = append(vv, hf.Value)
		} else {
			header[k] = slots[i : i+1 : i+1]
		}
	}
	return header
}

// canonicalKey is http.CanonicalHeaderKey for a lower-case HTTP/2 field name, without
// allocating for common names.
func canonicalKey(name string) string {
	switch name {
	case "content-length":
		return "Content-Length"
	case "content-type":
		return "Content-Type"
	case "date":
		return "Date"
	case "server":
		return "Server"
	case "user-agent":
		return "User-Agent"
	case "accept":
		return "Accept"
	case "accept-encoding":
		return "Accept-Encoding"
	case "l5d-orig-proto":
		return "L5d-Orig-Proto"
	case "l5d-dst-override":
		return "L5d-Dst-Override"
	case "te":
		return "Te"
	case "grpc-status":
		return "Grpc-Status"
	case "grpc-message":
		return "Grpc-Message"
	case "grpc-encoding":
		return "Grpc-Encoding"
	case "grpc-accept-encoding":
		return "Grpc-Accept-Encoding"
	case "grpc-timeout":
		return "Grpc-Timeout"
	}
	return http.CanonicalHeaderKey(name)
}

// lowerName is strings.ToLower for header names, without allocating for common ones.
func lowerName(k string) string {
	switch k {
	case "Content-Length":
		return "content-length"
	case "Content-Type":
		return "content-type"
	case "Date":
		return "date"
	case "Server":
		return "server"
	case "User-Agent":
		return "user-agent"
	case "Accept":
		return "accept"
	case "Accept-Encoding":
		return "accept-encoding"
	case "L5d-Orig-Proto":
		return "l5d-orig-proto"
	case "L5d-Dst-Override":
		return "l5d-dst-override"
	case "Te":
		return "te"
	case "Grpc-Status":
		return "grpc-status"
	case "Grpc-Message":
		return "grpc-message"
	case "Grpc-Encoding":
		return "grpc-encoding"
	case "Grpc-Accept-Encoding":
		return "grpc-accept-encoding"
	case "Grpc-Timeout":
		return "grpc-timeout"
	}
	return strings.ToLower(k)
}

// connCredit batches connection-level WINDOW_UPDATEs.
type connCredit struct {
	owed atomic.Int64
}

// add records n consumed bytes and returns how many to acknowledge now (0 until a batch
// has accumulated).
func (c *connCredit) add(n int) int64 {
	if v := c.owed.Add(int64(n)); v >= creditBatch {
		if c.owed.CompareAndSwap(v, 0) {
			return v
		}
	}
	return 0
}
