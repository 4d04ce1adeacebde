package h2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
)

// writeLog is an io.Writer that hashes what it is given and notes where each write
// started and how long it was.
type writeLog struct {
	h      hash.Hash
	off    int
	writes map[[2]int]bool // {offset, length}
}

func newWriteLog() *writeLog { return &writeLog{h: sha256.New(), writes: map[[2]int]bool{}} }

func (l *writeLog) Write(p []byte) (int, error) {
	l.h.Write(p)
	l.writes[[2]int{l.off, len(p)}] = true
	l.off += len(p)
	return len(p), nil
}

// recordSplitter writes what it is given to a TLS connection in pieces of the sizes in
// turn, so that frames and their headers straddle TLS records at every kind of place.
type recordSplitter struct {
	w     io.Writer
	sizes []int
	next  int
}

func (s *recordSplitter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), s.sizes[s.next%len(s.sizes)])
		s.next++
		if _, err := s.w.Write(p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// tlsPair returns a server configuration with a certificate for "h2.test" and a client
// configuration that verifies it.
func tlsPair(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	v := certs.ValidFor(time.Now(), time.Hour)
	anchor, err := certs.NewTrustAnchor("h2 test anchor", v)
	if err != nil {
		t.Fatal(err)
	}
	key, err := certs.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := anchor.IssueLeaf(key.Public(), "h2.test", v)
	if err != nil {
		t.Fatal(err)
	}
	tc := certs.TLSCertificate(key, leaf)
	return &tls.Config{Certificates: []tls.Certificate{tc}, MinVersion: tls.VersionTLS13},
		&tls.Config{RootCAs: certs.NewPool(anchor.Cert), ServerName: "h2.test", MinVersion: tls.VersionTLS13}
}

// sweepFrames are DATA frame sizes from 0 to 64 KiB (a step of 4,099 bytes, and each
// bound of the receive path: pooled chunks, directWrite), one over a large chunk, and
// padded ones, in groups that each fit a stream's window.
func sweepFrames() [][]struct{ n, pad int } {
	var all []struct{ n, pad int }
	for n := 0; n <= 64<<10; n += 4099 {
		all = append(all, struct{ n, pad int }{n, -1})
	}
	for _, n := range []int{minPooledChunk - 1, minPooledChunk, chunkSize, chunkSize + 1, directWrite - 1, directWrite, directWrite + 1, largeChunkSize, largeChunkSize + 1} {
		all = append(all, struct{ n, pad int }{n, -1})
	}
	all = append(all, struct{ n, pad int }{directWrite, 7}, struct{ n, pad int }{largeChunkSize, 0}, struct{ n, pad int }{3, 200})
	var groups [][]struct{ n, pad int }
	var cur []struct{ n, pad int }
	size := 0
	for _, f := range all {
		if size+f.n+f.pad+1 > streamWindow/2 {
			groups = append(groups, cur)
			cur, size = nil, 0
		}
		cur = append(cur, f)
		size += f.n + max(f.pad, 0) + 1
	}
	return append(groups, cur)
}

// TestRequestBodyWrittenToFromEveryFrameSizeAcrossRecords: request bodies sent over TLS in
// DATA frames of every size from 0 to 64 KiB (and padded ones), each frame split across
// TLS records at varying places, reach a handler that has the body write itself
// (WriteTo) byte for byte; each frame of directWrite bytes or more, unpadded or not,
// reaches it as one write of its own, and the declared trailers are set at the end.
func TestRequestBodyWrittenToFromEveryFrameSizeAcrossRecords(t *testing.T) {
	serverTLS, clientTLS := tlsPair(t)
	addr := serveWrapped(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := newWriteLog()
		n, err := r.Body.(io.WriterTo).WriteTo(l)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var direct []string
		for k := range l.writes {
			if k[1] >= directWrite {
				direct = append(direct, fmt.Sprintf("%d+%d", k[0], k[1]))
			}
		}
		w.Header().Set("x-sum", hex.EncodeToString(l.h.Sum(nil)))
		w.Header().Set("x-len", strconv.FormatInt(n, 10))
		w.Header().Set("x-writes", strings.Join(direct, ","))
		w.Header().Set("x-trailer", r.Trailer.Get("x-t"))
	})}, func(c net.Conn) net.Conn { return tls.Server(c, serverTLS) })
	c, err := tls.Dial("tcp", addr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	rc := rawClientOn(t, c, &recordSplitter{w: c, sizes: []int{1, 8, 10, 5003, 16384, 16385, 40000, 9}})
	groups := sweepFrames()
	type want struct {
		sum    string
		n      int
		direct map[string]bool
	}
	wants := map[uint32]want{}
	for g, frames := range groups {
		id := uint32(2*g + 1)
		if err := rc.request(id, "POST", "/", false, "trailer", "x-t"); err != nil {
			t.Fatal(err)
		}
		var sent []byte
		direct := map[string]bool{}
		for i, f := range frames {
			p := framePattern(i+g, f.n)
			if f.n >= directWrite {
				direct[fmt.Sprintf("%d+%d", len(sent), f.n)] = true
			}
			sent = append(sent, p...)
			if f.pad < 0 {
				err = rc.fr.WriteData(id, false, p)
			} else {
				err = rc.fr.WriteDataPadded(id, false, p, make([]byte, f.pad))
			}
			if err != nil {
				t.Fatalf("stream %d, frame %d (%d bytes): %v", id, i, f.n, err)
			}
		}
		if err := rc.headers(id, true, "x-t", "end of "+strconv.Itoa(int(id))); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(sent)
		wants[id] = want{hex.EncodeToString(sum[:]), len(sent), direct}
	}
	o := rc.read(func(o *outcome) bool {
		for id := range wants {
			if !o.ended[id] && o.resets[id] == 0 {
				return o.goAway != nil
			}
		}
		return true
	})
	for id, w := range wants {
		got := map[string]string{}
		for _, f := range o.fields[id] {
			got[f.Name] = f.Value
		}
		if o.status[id] != "200" || got["x-len"] != strconv.Itoa(w.n) || got["x-sum"] != w.sum {
			t.Fatalf("stream %d: status %q, the handler wrote %s bytes (sha256 %s), want 200, %d (%s); outcome %+v", id, o.status[id], got["x-len"], got["x-sum"], w.n, w.sum, o)
		}
		if got["x-trailer"] != "end of "+strconv.Itoa(int(id)) {
			t.Errorf("stream %d: trailer %q after WriteTo", id, got["x-trailer"])
		}
		writes := map[string]bool{}
		for _, s := range strings.Split(got["x-writes"], ",") {
			writes[s] = true
		}
		for k := range w.direct {
			if !writes[k] {
				t.Errorf("stream %d: the frame at offset+length %s was not written on its own (large writes %q)", id, k, got["x-writes"])
			}
		}
	}
}

// blockingWriter holds its first Write until release is closed, counting what it is given.
type blockingWriter struct {
	mu      sync.Mutex
	first   chan struct{} // closed when the first Write began
	release chan struct{}
	buf     bytes.Buffer
	began   bool
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	first := !b.began
	b.began = true
	b.mu.Unlock()
	if first {
		close(b.first)
		<-b.release
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// TestResponseWrittenToHoldsOneStreamWindow: a response whose body writes itself to a
// writer that blocks holds, in the client, the stream window it announced and no more
// besides the 64 KiB chunk being written (acknowledged when taken, as a Read acknowledges
// what it copies out); once the writer moves, the whole body arrives intact, trailers
// included.
func TestResponseWrittenToHoldsOneStreamWindow(t *testing.T) {
	const size = 3 * streamWindow
	const piece = 64 << 10
	body := framePattern(2, size)
	var written atomic.Int64
	tr, base := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "x-t")
		for p := body; len(p) > 0; p = p[piece:] {
			if _, err := w.Write(p[:piece]); err != nil {
				return
			}
			written.Add(piece)
		}
		w.Header().Set("x-t", "done")
	}))
	resp, unread := getHeld(t, tr, base)
	defer resp.Body.Close()
	bw := &blockingWriter{first: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := resp.Body.(io.WriterTo).WriteTo(bw)
		done <- err
	}()
	<-bw.first
	// The first write holds a 64 KiB frame; a whole window fills up behind it.
	for deadline := time.Now().Add(30 * time.Second); unread() < streamWindow; {
		if time.Now().After(deadline) {
			close(bw.release)
			t.Fatalf("the client holds %d bytes besides the write, want the stream window (%d)", unread(), streamWindow)
		}
		time.Sleep(time.Millisecond) // polling
	}
	// The server may have one more write buffered (a chunk), none sent.
	if n, w := unread(), written.Load(); n != streamWindow || w > streamWindow+2*piece {
		close(bw.release)
		t.Fatalf("the client holds %d bytes besides the 64 KiB being written, %d written by the handler; want %d held, at most %d written", n, w, streamWindow, streamWindow+2*piece)
	}
	close(bw.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bw.buf.Bytes(), body) {
		t.Fatalf("wrote %d bytes, not the %d sent", bw.buf.Len(), size)
	}
	if got := resp.Trailer.Get("x-t"); got != "done" {
		t.Fatalf("trailer %q after WriteTo, want done", got)
	}
}

// TestFieldsResponseWrittenTo: a RoundTripFields response's body written with WriteTo
// arrives whole, and its trailers are then available as after Read's io.EOF.
func TestFieldsResponseWrittenTo(t *testing.T) {
	body := framePattern(3, 300<<10)
	tr, base := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "x-t")
		w.Write(body)
		w.Header().Set("x-t", "done")
	}))
	resp, err := tr.RoundTripFields(context.Background(), strings.TrimPrefix(base, "http://"), &RequestHead{Method: "GET", Authority: "test.example", Path: "/", Fields: func(func(string, string)) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	var got bytes.Buffer
	if _, err := resp.WriteTo(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("wrote %d bytes, not the %d sent", got.Len(), len(body))
	}
	if tf := resp.Trailers(); len(tf) != 1 || tf[0].Name != "x-t" || tf[0].Value != "done" {
		t.Fatalf("trailers %v, want x-t: done", tf)
	}
}

// TestRequestBodyWrittenToUpToALimit: WriteNTo returns once n bytes are written, the
// limit falling inside a 64 KiB frame, and the rest of the body reads on from there.
func TestRequestBodyWrittenToUpToALimit(t *testing.T) {
	body := framePattern(4, 300<<10)
	const limit = 100_000
	tr, base := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var got bytes.Buffer
		n, err := r.Body.(*requestBody).WriteNTo(&got, limit)
		if err != nil || n != limit || got.Len() != limit {
			http.Error(w, fmt.Sprintf("WriteNTo: %d bytes (%d), %v", n, got.Len(), err), http.StatusInternalServerError)
			return
		}
		if _, err := io.Copy(&got, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if !bytes.Equal(got.Bytes(), body) {
			http.Error(w, fmt.Sprintf("read %d bytes in all, not the body sent", got.Len()), http.StatusInternalServerError)
		}
	}))
	req, _ := http.NewRequest("POST", base+"/", bytes.NewReader(body))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, msg)
	}
}
