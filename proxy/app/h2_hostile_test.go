package app

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Attacker is an h2c client writing raw frames to a proxy listener, ignoring flow
// control and stream limits.
type h2Attacker struct {
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

func dialH2(t *testing.T, addr netip.AddrPort) *h2Attacker {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	a := &h2Attacker{c: c, fr: http2.NewFramer(c, c)}
	a.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	a.henc = hpack.NewEncoder(&a.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := a.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *h2Attacker) headers(id uint32, end bool, pairs ...string) error {
	a.hbuf.Reset()
	for i := 0; i+1 < len(pairs); i += 2 {
		a.henc.WriteField(hpack.HeaderField{Name: pairs[i], Value: pairs[i+1]})
	}
	return a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.hbuf.Bytes(), EndStream: end, EndHeaders: true})
}

// TestH2RequestTrailerFloodThroughProxy: issue 27's crash. An h2c client declaring
// request trailers and sending large trailer blocks on many streams made the proxy's
// HTTP/2 read loop write each request's Trailer map while the forwarding side iterated
// it ("fatal error: concurrent map iteration and map write"; go test -race reports it).
// Through the two-proxy chain the proxies stay up, every stream is answered and the
// declared trailer reaches the app.
func TestH2RequestTrailerFloodThroughProxy(t *testing.T) {
	appAddr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, r.Trailer.Get("X-A"))
	}))
	ch := newChain(t, appAddr, nil)
	a := dialH2(t, ch.entry)
	const streams = 100
	trailers := []string{"x-a", "ok", "x-b", "2"}
	for i := range 60 {
		trailers = append(trailers, fmt.Sprintf("x-undeclared-%d", i), strings.Repeat("v", 20))
	}
	go func() {
		for i := range streams {
			id := uint32(2*i + 1)
			if a.headers(id, false, ":method", "POST", ":scheme", "http", ":authority", "web.example", ":path", "/t", "trailer", "x-a, x-b") != nil ||
				a.fr.WriteData(id, false, []byte("body")) != nil ||
				a.headers(id, true, trailers...) != nil {
				return
			}
		}
	}()
	bodies := map[uint32]string{}
	ended := 0
	for ended < streams {
		f, err := a.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d answered streams: %v", ended, err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" && s != "200" {
				t.Fatalf("stream %d: status %s", f.StreamID, s)
			}
			if f.StreamEnded() {
				ended++
			}
		case *http2.DataFrame:
			bodies[f.StreamID] += string(f.Data())
			if f.StreamEnded() {
				ended++
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
	for id, b := range bodies {
		if b != "ok" {
			t.Fatalf("stream %d: the app saw trailer %q, want ok", id, b)
		}
	}
	// The proxies still serve.
	if resp, body := get(t, clientTo(ch.entry, false), "http://web.example/after"); resp.StatusCode != 200 || body != "" {
		t.Fatalf("after the flood: %d %q", resp.StatusCode, body)
	}
}

// TestH2RapidResetThroughProxy: issue 27's rapid reset (CVE-2023-44487) through the proxy.
// 5,000 HEADERS+RST_STREAM pairs on one h2c connection used to put 2,917 requests on the
// app with no GOAWAY; the proxy now closes the connection with ENHANCE_YOUR_CALM once the
// resets exceed its budget (the 1000 announced streams), so the requests reaching the app
// stay below that, and it keeps serving other clients.
func TestH2RapidResetThroughProxy(t *testing.T) {
	var hits atomic.Int64
	appAddr, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "ok")
	}))
	ch := newChain(t, appAddr, nil)
	a := dialH2(t, ch.entry)
	const pairs = 5000
	go func() {
		for i := range pairs {
			id := uint32(2*i + 1)
			if a.headers(id, true, ":method", "GET", ":scheme", "http", ":authority", "web.example", ":path", "/r") != nil ||
				a.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
		a.fr.WritePing(false, [8]byte{1})
	}()
	var goAway *http2.GoAwayFrame
	for goAway == nil {
		f, err := a.fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY: %v (the app saw %d requests)", err, hits.Load())
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			goAway = f
		case *http2.PingFrame:
			if f.IsAck() {
				t.Fatalf("%d rapid resets were all read without GOAWAY; the app saw %d requests", pairs, hits.Load())
			}
		}
	}
	if goAway.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", goAway.ErrCode)
	}
	if resp, body := get(t, clientTo(ch.entry, false), "http://web.example/after"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("after the attack: %d %q", resp.StatusCode, body)
	}
	if n := hits.Load() - 1; n > 1000 {
		t.Fatalf("%d rapid resets put %d requests on the app; want at most the reset budget (1000)", pairs, n)
	}
	t.Logf("%d rapid resets put %d requests on the app before GOAWAY (last stream %d)", pairs, hits.Load()-1, goAway.LastStreamID)
}
