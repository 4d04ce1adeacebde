package h2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// dataFrameSizes are DATA frames a peer may send: below, at and around a pooled chunk's
// bounds (read straight into a chunk from minPooledChunk to chunkSize bytes, copied
// otherwise), larger than a chunk (the peer may send up to the SETTINGS_MAX_FRAME_SIZE we
// announce), and padded (never read straight into a chunk). pad is the padding length,
// -1 for a frame without the PADDED flag.
var dataFrameSizes = []struct{ n, pad int }{
	{1, -1}, {100, -1}, {minPooledChunk - 1, -1}, {minPooledChunk, -1}, {10000, -1},
	{chunkSize, -1}, {chunkSize + 1, -1}, {64 << 10, -1}, {0, -1},
	{chunkSize, 10}, {5000, 255}, {minPooledChunk, 0}, {3, 0},
}

// framePattern returns n bytes of a pattern that differs from frame to frame.
func framePattern(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j*7)
	}
	return b
}

// writeFrames sends dataFrameSizes on stream id with fr, the last frame ending the
// stream, and returns the data sent.
func writeFrames(t *testing.T, fr *http2.Framer, id uint32) []byte {
	var all []byte
	for i, s := range dataFrameSizes {
		p := framePattern(i, s.n)
		all = append(all, p...)
		end := i == len(dataFrameSizes)-1
		var err error
		if s.pad < 0 {
			err = fr.WriteData(id, end, p)
		} else {
			err = fr.WriteDataPadded(id, end, p, make([]byte, s.pad))
		}
		if err != nil {
			t.Errorf("writing DATA frame %d: %v", i, err)
			return all
		}
	}
	return all
}

// TestRequestBodyOfEveryFrameSize: a request body sent in DATA frames of every size a
// client may use (padded or not, within a pooled chunk or not) reaches the handler byte for
// byte, whichever way each frame was read.
func TestRequestBodyOfEveryFrameSize(t *testing.T) {
	rc := dialRaw(t, serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sum := sha256.Sum256(b)
		w.Header().Set("x-sum", hex.EncodeToString(sum[:]))
		w.Header().Set("x-len", strconv.Itoa(len(b)))
	})}))
	if err := rc.request(1, "POST", "/", false); err != nil {
		t.Fatal(err)
	}
	sent := writeFrames(t, rc.fr, 1)
	o := rc.read(func(o *outcome) bool { return o.ended[1] || len(o.resets) > 0 || o.goAway != nil })
	if o.status[1] != "200" {
		t.Fatalf("response %+v, want 200", o)
	}
	sum := sha256.Sum256(sent)
	got := map[string]string{}
	for _, f := range o.fields[1] {
		got[f.Name] = f.Value
	}
	if got["x-len"] != strconv.Itoa(len(sent)) || got["x-sum"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("the handler read %s bytes (sha256 %s), want %d (%x)", got["x-len"], got["x-sum"], len(sent), sum)
	}
}

// TestResponseBodyOfEveryFrameSize: a response body a server sends in DATA frames of every
// size (padded or not, within a pooled chunk or not) reads back byte for byte.
func TestResponseBodyOfEveryFrameSize(t *testing.T) {
	sent := make(chan []byte, 1)
	addr := hostileServer(t, nil, func(fr *http2.Framer, henc func(...string) []byte, id uint32) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: henc(":status", "200"), EndHeaders: true})
		sent <- writeFrames(t, fr, id)
	})
	tr := tcpTransport()
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := <-sent; !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d sent", len(got), len(want))
	}
}

// getHeld sends a GET to base with tr and returns the response (headers arrived) and a
// function that reports how many of its body's bytes the client holds unread.
func getHeld(t *testing.T, tr *Transport, base string) (*http.Response, func() int) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	pipe := &resp.Body.(*responseBody).cs.body
	return resp, func() int {
		pipe.mu.Lock()
		defer pipe.mu.Unlock()
		return pipe.unread
	}
}

// TestUnreadResponseHoldsOneStreamWindow: a response the client does not read yet is held
// in the client up to the stream window it announced and no further (the server's writes
// wait for credit); once read, the whole body arrives intact.
func TestUnreadResponseHoldsOneStreamWindow(t *testing.T) {
	const size = 2 * streamWindow
	var written atomic.Int64
	body := framePattern(1, size)
	tr, base := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for p := body; len(p) > 0; {
			n := min(len(p), 16<<10)
			if _, err := w.Write(p[:n]); err != nil {
				return
			}
			written.Add(int64(n))
			p = p[n:]
		}
	}))
	resp, unread := getHeld(t, tr, base)
	defer resp.Body.Close()
	for deadline := time.Now().Add(30 * time.Second); unread() < streamWindow; {
		if time.Now().After(deadline) {
			t.Fatalf("the client holds %d bytes, want the stream window (%d) filled", unread(), streamWindow)
		}
		time.Sleep(time.Millisecond) // polling
	}
	// The server may have one more write buffered (a chunk), none sent.
	if n, w := unread(), written.Load(); n != streamWindow || w > streamWindow+chunkSize {
		t.Fatalf("unread %d bytes, %d written by the handler; want %d unread and at most %d written", n, w, streamWindow, streamWindow+chunkSize)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, not the %d written", len(got), size)
	}
}
