package h2

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// frameSizeCases are the SETTINGS_MAX_FRAME_SIZE a peer announces (0: none, the RFC's
// default of 16,384) and the largest DATA frame it must then get from a 1 MiB body: no
// more than it announced, and frames of maxSendFrame once it accepts them.
var frameSizeCases = []struct {
	announce uint32
	want     int
}{
	{0, 16384},
	{16384, 16384},
	{20000, 20000},
	{1 << 20, maxSendFrame},
}

// TestServerSendsFramesWithinPeerMaxFrameSize: a response body goes out in DATA frames no
// larger than the client announced (16 KiB by default, as Linkerd's proxy and most peers
// keep), and in frames of maxSendFrame to a client that accepts them.
func TestServerSendsFramesWithinPeerMaxFrameSize(t *testing.T) {
	body := bytes.Repeat([]byte("f"), 1<<20)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })})
	for _, c := range frameSizeCases {
		rc := dialRaw(t, addr)
		settings := []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 1 << 30}}
		if c.announce != 0 {
			settings = append(settings, http2.Setting{ID: http2.SettingMaxFrameSize, Val: c.announce})
		}
		if err := rc.fr.WriteSettings(settings...); err != nil {
			t.Fatal(err)
		}
		if err := rc.fr.WriteWindowUpdate(0, 1<<30); err != nil {
			t.Fatal(err)
		}
		if err := rc.request(1, "GET", "/", true); err != nil {
			t.Fatal(err)
		}
		largest, total := 0, 0
		for total < len(body) {
			f, err := rc.fr.ReadFrame()
			if err != nil {
				t.Fatalf("announcing %d: after %d body bytes: %v", c.announce, total, err)
			}
			if d, ok := f.(*http2.DataFrame); ok {
				largest = max(largest, len(d.Data()))
				total += len(d.Data())
			}
		}
		if largest != c.want {
			t.Errorf("announcing SETTINGS_MAX_FRAME_SIZE %d: largest DATA frame %d bytes, want %d", c.announce, largest, c.want)
		}
	}
}

// TestTransportSendsFramesWithinPeerMaxFrameSize: the client's side: a request body goes
// out in DATA frames no larger than the server announced, and in frames of maxSendFrame
// to a server that accepts them.
func TestTransportSendsFramesWithinPeerMaxFrameSize(t *testing.T) {
	body := bytes.Repeat([]byte("r"), 1<<20)
	for _, c := range frameSizeCases {
		settings := []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 1 << 30}}
		if c.announce != 0 {
			settings = append(settings, http2.Setting{ID: http2.SettingMaxFrameSize, Val: c.announce})
		}
		largest := make(chan int, 1)
		addr := hostileServer(t, settings, func(fr *http2.Framer, henc func(...string) []byte, id uint32) {
			most := 0
			defer func() { largest <- most }()
			if fr.WriteWindowUpdate(0, 1<<30) != nil {
				return
			}
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				if d, ok := f.(*http2.DataFrame); ok {
					most = max(most, len(d.Data()))
					if d.StreamEnded() {
						fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: henc(":status", "200"), EndStream: true, EndHeaders: true})
						return
					}
				}
			}
		})
		tr := tcpTransport()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/", bytes.NewReader(body))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("announcing %d: %v", c.announce, err)
		}
		resp.Body.Close()
		if got := <-largest; got != c.want {
			t.Errorf("announcing SETTINGS_MAX_FRAME_SIZE %d: largest DATA frame %d bytes, want %d", c.announce, got, c.want)
		}
		cancel()
		tr.CloseIdleConnections()
	}
}

// TestServerRefusesFrameLargerThanAnnounced: a DATA frame one byte over the
// SETTINGS_MAX_FRAME_SIZE the server announced is a connection error of type
// FRAME_SIZE_ERROR (RFC 9113 section 4.2), answered with GOAWAY.
func TestServerRefusesFrameLargerThanAnnounced(t *testing.T) {
	addr := serve(t, &Server{Handler: echo()})
	rc := dialRaw(t, addr)
	if err := rc.request(1, "POST", "/", false); err != nil {
		t.Fatal(err)
	}
	rc.fr.WriteData(1, true, make([]byte, maxFrameRead+1)) // the server may close first
	o := rc.read(func(o *outcome) bool { return o.goAway != nil })
	if o.goAway == nil || o.goAway.ErrCode != http2.ErrCodeFrameSize {
		t.Fatalf("DATA frame of %d bytes: %+v, want GOAWAY FRAME_SIZE_ERROR", maxFrameRead+1, o)
	}
}

// TestTransportRefusesFrameLargerThanAnnounced: the client's side of the same limit: a
// response DATA frame over what the client announced ends the connection with GOAWAY
// FRAME_SIZE_ERROR and fails the request.
func TestTransportRefusesFrameLargerThanAnnounced(t *testing.T) {
	code := make(chan http2.ErrCode, 1)
	addr := hostileServer(t, nil, func(fr *http2.Framer, henc func(...string) []byte, id uint32) {
		defer close(code)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: henc(":status", "200"), EndHeaders: true})
		fr.WriteData(id, true, make([]byte, maxFrameRead+1))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				code <- g.ErrCode
				return
			}
		}
	})
	tr := tcpTransport()
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	if resp, err := tr.RoundTrip(req); err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatal("a DATA frame over SETTINGS_MAX_FRAME_SIZE was read as a body")
		}
	}
	if got, ok := <-code; !ok || got != http2.ErrCodeFrameSize {
		t.Fatalf("GOAWAY %v (received: %v), want FRAME_SIZE_ERROR", got, ok)
	}
}
