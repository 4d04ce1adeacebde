package rpc

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// rawConn is a hand-driven HTTP/2 client connection, to see what the server advertises and
// enforces without grpc-go's client-side queueing in the way.
type rawConn struct {
	t  *testing.T
	fr *http2.Framer
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, fr: fr}
}

// serverSettings reads frames until the server's first (non-ack) SETTINGS and returns
// them, answering with an ack.
func (c *rawConn) serverSettings() map[http2.SettingID]uint32 {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			out := map[http2.SettingID]uint32{}
			_ = sf.ForeachSetting(func(s http2.Setting) error { out[s.ID] = s.Val; return nil })
			if err := c.fr.WriteSettingsAck(); err != nil {
				c.t.Fatal(err)
			}
			return out
		}
	}
}

// call opens stream id as a unary gRPC call of method with an empty request message.
func (c *rawConn) call(id uint32, method string) {
	c.t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/test.Probe/" + method},
		{":authority", "test"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
	if err := c.fr.WriteData(id, true, []byte{0, 0, 0, 0, 0}); err != nil {
		c.t.Fatal(err)
	}
}

// TestMaxConcurrentStreamsEnforced: the server advertises its stream limit in SETTINGS and
// refuses (RST_STREAM REFUSED_STREAM) a stream beyond it from a client that ignores the
// setting, without running its handler; the streams within the limit are served.
func TestMaxConcurrentStreamsEnforced(t *testing.T) {
	const limit = 4
	h := startServer(t, ServerOptions{MaxConcurrentStreams: limit})
	c := dialRaw(t, h.conn.Target())
	if got := c.serverSettings()[http2.SettingMaxConcurrentStreams]; got != limit {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", got, limit)
	}
	for i := range limit {
		c.call(uint32(2*i+1), "Block")
	}
	for range limit {
		select {
		case <-h.svc.entered:
		case <-time.After(30 * time.Second):
			t.Fatal("the streams within the limit did not all reach their handler")
		}
	}
	over := uint32(2*limit + 1)
	c.call(over, "Block")
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no RST_STREAM for the stream over the limit: %v", err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == over {
			if rst.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("stream over the limit reset with %v, want REFUSED_STREAM", rst.ErrCode)
			}
			break
		}
	}
	select {
	case <-h.svc.entered:
		t.Fatal("the handler ran for a stream over the limit")
	default:
	}
	// The calls within the limit finish normally.
	close(h.svc.release)
	ended := 0
	for ended < limit {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d of %d calls ended: %v", ended, limit, err)
		}
		if hf, ok := f.(*http2.HeadersFrame); ok && hf.StreamEnded() {
			ended++
		}
	}
}

// TestDefaultServerLimits: without options the server still advertises a stream limit.
func TestDefaultServerLimits(t *testing.T) {
	h := startServer(t, ServerOptions{})
	s := dialRaw(t, h.conn.Target()).serverSettings()
	if got, ok := s[http2.SettingMaxConcurrentStreams]; !ok || got != DefaultMaxConcurrentStreams {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent: %v), want %d", got, ok, DefaultMaxConcurrentStreams)
	}
}

// TestMaxRecvMsgSize: a request larger than the bound is refused with ResourceExhausted
// before any handler runs; one within it is served.
func TestMaxRecvMsgSize(t *testing.T) {
	h := startServer(t, ServerOptions{MaxRecvMsgSize: 1024})
	ctx := t.Context()
	call := func(n int) error {
		return h.conn.Invoke(ctx, "/test.Probe/Ok", wrapperspb.Bytes(make([]byte, n)), new(emptypb.Empty))
	}
	if err := call(2048); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("2 KiB request to a 1 KiB server: %v, want ResourceExhausted", err)
	}
	if err := call(512); err != nil {
		t.Fatalf("512-byte request: %v", err)
	}
}
