package h2

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fuzzOps reads frame descriptions from fuzz input: each byte read past the end is 0.
type fuzzOps struct{ b []byte }

func (o *fuzzOps) more() bool { return len(o.b) > 0 }

func (o *fuzzOps) byte() byte {
	if len(o.b) == 0 {
		return 0
	}
	c := o.b[0]
	o.b = o.b[1:]
	return c
}

func (o *fuzzOps) u32() uint32 {
	return uint32(o.byte())<<24 | uint32(o.byte())<<16 | uint32(o.byte())<<8 | uint32(o.byte())
}

// bytes returns the next n input bytes (fewer at the end).
func (o *fuzzOps) bytes(n int) []byte {
	n = min(n, len(o.b))
	p := o.b[:n]
	o.b = o.b[n:]
	return p
}

// fuzzFields are the header fields a HEADERS description picks from: valid ones and
// those a hostile client would send.
var fuzzFields = [][2]string{
	{"content-type", "application/grpc"}, {"te", "trailers"}, {"trailer", "x-a, grpc-status"},
	{"content-length", "3"}, {"content-length", "x"}, {"connection", "close"}, {"te", "gzip"},
	{"transfer-encoding", "chunked"}, {"host", "h.example"}, {"x-a", "1"}, {"grpc-status", "0"},
	{":path", "/again"}, {":status", "200"}, {"upgrade", "h2c"}, {"content-length", "-1"},
	{"x-long", string(make([]byte, 300))},
}

// writeFuzzFrames writes the frames data describes to fr (illegal ones included), until
// the description or the connection ends. Each frame is one opcode byte and its
// parameters; stream IDs are one byte, so that frames of a sequence meet on streams.
func writeFuzzFrames(fr *http2.Framer, data []byte) {
	o := &fuzzOps{b: data}
	var hbuf []byte
	enc := hpack.NewEncoder(writerFunc(func(p []byte) (int, error) { hbuf = append(hbuf, p...); return len(p), nil }))
	block := func(request bool, n byte) []byte {
		hbuf = hbuf[:0]
		if request {
			for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "f.example"}, {":path", "/f"}} {
				enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
			}
		}
		for i := byte(0); i < n%4; i++ {
			kv := fuzzFields[int(o.byte())%len(fuzzFields)]
			enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		return append([]byte(nil), hbuf...)
	}
	var err error
	for o.more() && err == nil {
		op, id, flags := o.byte(), uint32(o.byte()), o.byte()
		end := flags&1 != 0
		switch op % 12 {
		case 0: // a request's HEADERS
			err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block(true, flags>>1), EndStream: end, EndHeaders: flags&2 == 0})
		case 1: // trailers (or any header block without pseudo-header fields)
			err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block(false, flags>>1), EndStream: end, EndHeaders: true})
		case 2: // DATA, possibly padded, possibly large
			n := int(o.byte()) << (flags >> 5)
			if flags&2 != 0 {
				err = fr.WriteDataPadded(id, end, make([]byte, n), make([]byte, flags>>2&7))
			} else {
				err = fr.WriteData(id, end, make([]byte, n))
			}
		case 3:
			err = fr.WriteRSTStream(id, http2.ErrCode(o.byte()))
		case 4:
			err = fr.WriteSettings(http2.Setting{ID: http2.SettingID(flags % 10), Val: o.u32()})
		case 5:
			err = fr.WriteSettingsAck()
		case 6:
			err = fr.WriteWindowUpdate(id, o.u32()&(1<<31-1))
		case 7:
			err = fr.WritePing(end, [8]byte{flags})
		case 8:
			err = fr.WriteGoAway(id, http2.ErrCode(flags), nil)
		case 9:
			err = fr.WriteContinuation(id, end, block(false, flags>>1))
		case 10:
			err = fr.WritePriority(id, http2.PriorityParam{StreamDep: uint32(o.byte()), Weight: flags})
		case 11: // any frame type with raw flags and payload
			err = fr.WriteRawFrame(http2.FrameType(flags%12), http2.Flags(o.byte()), id, o.bytes(int(o.byte())))
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// FuzzServerFrames drives the server with sequences of arbitrary (often illegal) frames
// after a valid preface and SETTINGS, and checks that it neither panics nor hangs: once
// the client has written its frames and closed its side, ServeConn must return within a
// deadline, having answered at least its own SETTINGS.
func FuzzServerFrames(f *testing.F) {
	f.Add([]byte{0, 1, 0})                                                          // GET-like request ending its stream
	f.Add([]byte{0, 1, 2 << 1, 0, 2, 2, 1, 0, 3, 1, 1, 3 << 1, 9, 10, 3})           // POST, body, trailers
	f.Add([]byte{0, 1, 1, 3, 1, 0, 8, 0, 3, 3, 0, 8, 0, 5, 1, 0, 3, 5, 0, 8})       // rapid reset
	f.Add([]byte{4, 0, 5, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})                      // SETTINGS_MAX_FRAME_SIZE 0, then a request
	f.Add([]byte{6, 0, 0, 0x7f, 0xff, 0xff, 0xff, 6, 0, 0, 0x7f, 0xff, 0xff, 0xff}) // window overflow
	f.Add([]byte{0, 1, 2, 9, 1, 0, 9, 1, 1})                                        // CONTINUATION sequence
	f.Add([]byte{0, 1, 0, 2, 1, 0xe0, 255, 2, 1, 0xe1, 255})                        // DATA beyond the window
	f.Add([]byte{0, 1, 0, 2, 1, 0xa0, 255, 2, 1, 0xa1, 200})                        // DATA read straight into chunks (8,160 and 6,400 bytes)
	f.Add([]byte{11, 1, 1, 0, 4, 1, 2, 3, 4, 7, 0, 0, 5, 0, 0})                     // raw frames, PING, SETTINGS ACK
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2048 {
			// Long inputs add nothing that repeating short sequences does not, and make
			// the engine minimize for a minute at a time.
			return
		}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Trailer", "X-T")
			w.Write([]byte(r.Trailer.Get("X-A")))
			w.Header().Set("X-T", "t")
		})
		srv := &Server{Handler: h, MaxConcurrentStreams: 8, IdleTimeout: -1}
		client, server := net.Pipe()
		served := make(chan error, 1)
		go func() { served <- srv.ServeConn(context.Background(), server) }()
		answered := make(chan int64, 1)
		go func() { n, _ := io.Copy(io.Discard, client); answered <- n }()
		client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		fr := http2.NewFramer(client, nil)
		fr.AllowIllegalWrites = true
		if _, err := io.WriteString(client, http2.ClientPreface); err == nil && fr.WriteSettings() == nil {
			writeFuzzFrames(fr, data)
		}
		client.Close()
		select {
		case <-served:
		case <-time.After(20 * time.Second):
			t.Fatalf("the server did not finish within 20s of the client closing (input %x)", data)
		}
		if n := <-answered; n == 0 {
			t.Fatalf("the server wrote nothing, not even its SETTINGS (input %x)", data)
		}
	})
}
