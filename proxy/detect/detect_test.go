package detect

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// pipe returns the two ends of a loopback TCP connection.
func pipe(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestDetectOverRealSockets(t *testing.T) {
	cases := []struct {
		name    string
		writes  []string
		closeAt bool // close the client's write side after writing
		want    Protocol
	}{
		{"http1 get", []string{"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"}, false, HTTP1},
		{"http1 split request line", []string{"GE", "T / HT", "TP/1.0\r\n\r\n"}, false, HTTP1},
		{"http1 custom method", []string{"PURGE /x HTTP/1.1\r\n\r\n"}, false, HTTP1},
		{"http2 preface", []string{Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"}, false, HTTP2},
		{"http2 preface split", []string{"PRI * HTTP/2", ".0\r\n\r\nSM\r\n\r\n"}, false, HTTP2},
		{"tls client hello", []string{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"}, false, Opaque},
		{"redis inline", []string{"PING\r\n"}, false, Opaque},
		{"not http version", []string{"GET / SMTP/1.0\r\n"}, false, Opaque},
		{"server speaks first", nil, false, Opaque},
		{"client closes mid-method", []string{"GET"}, true, Opaque},
		{"http2 preface prefix then close", []string{"PRI * HTTP/2.0"}, true, Opaque},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pipe(t)
			go func() {
				for _, w := range tc.writes {
					client.Write([]byte(w))
				}
				if tc.closeAt {
					client.(*net.TCPConn).CloseWrite()
				}
			}()
			// A short timeout keeps the server-speaks-first case quick; no case depends on
			// it firing except that one, whose result is the same either way.
			timeout := 10 * time.Second
			if tc.writes == nil {
				timeout = 50 * time.Millisecond
			}
			got, conn, err := Detect(server, timeout)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("detected %v, want %v", got, tc.want)
			}
			// Everything the client sent must still be readable, in order.
			var all string
			for _, w := range tc.writes {
				all += w
			}
			if all != "" {
				buf := make([]byte, len(all))
				if _, err := io.ReadFull(conn, buf); err != nil {
					t.Fatalf("replay: %v", err)
				}
				if string(buf) != all {
					t.Fatalf("replayed %q, want %q", buf, all)
				}
			}
			// Reads continue on the live connection after the replay.
			if !tc.closeAt {
				go client.Write([]byte("more"))
				buf := make([]byte, 4)
				if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "more" {
					t.Fatalf("read after replay: %q %v", buf, err)
				}
			}
		})
	}
}

func TestClassify(t *testing.T) {
	cases := map[string]Protocol{
		"GET / HTTP/1.1\r\n":     HTTP1,
		"POST /a%20b HTTP/1.0\n": HTTP1,
		Preface:                  HTTP2,
		"":                       Opaque,
		"GET":                    Opaque,
		" GET / HTTP/1.1\r\n":    Opaque,
		"GET /HTTP/1.1\r\n":      Opaque,
		"\x00\x01":               Opaque,
	}
	for in, want := range cases {
		if got := Classify([]byte(in)); got != want {
			t.Errorf("Classify(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzVerdict(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\n", Preface, "PRI", "\x16\x03", "GET  HTTP/1.1\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, done := verdict(b)
		if p == HTTP2 && (len(b) < len(Preface) || string(b[:len(Preface)]) != Preface) {
			t.Fatalf("HTTP/2 without the preface: %q", b)
		}
		if p == HTTP1 && !done {
			t.Fatalf("HTTP/1 verdict not final for %q", b)
		}
	})
}

func TestPartial(t *testing.T) {
	cases := map[string]Protocol{
		"":                   Opaque,
		"G":                  HTTP1,
		"GET /admin":         HTTP1,
		"GET /admin HTTP/1.": HTTP1,
		"PRI * HT":           HTTP2,
		"GET / HTTP/1.1\r\n": HTTP1,
		"\x00\x01":           Opaque,
		" GET":               Opaque,
		"GET /x FTP/1.0\r\n": Opaque,
	}
	for in, want := range cases {
		if got := Partial([]byte(in)); got != want {
			t.Errorf("Partial(%q) = %v, want %v", in, got, want)
		}
	}
}

// FuzzDetect runs detection over a connection that delivers the input in two writes and
// then closes: every byte is replayed in order, the protocol is the verdict on the bytes
// detection consumed, and Partial agrees with it.
func FuzzDetect(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Preface + "\x00\x00\x00\x04", "PRI * HTTP/2.0\r\n", "\x16\x03\x01\x00", "G", ""} {
		f.Add([]byte(s), uint16(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		if len(data) > 2*MaxPeek {
			return
		}
		k := min(int(split), len(data))
		client, server := net.Pipe()
		defer server.Close()
		go func() {
			client.Write(data[:k])
			client.Write(data[k:])
			client.Close()
		}()
		p, dc, err := Detect(server, 0) // no deadline: net.Pipe refuses one once closed
		if err != nil {
			t.Fatalf("Detect: %v", err)
		}
		consumed := append([]byte(nil), dc.Buffered()...)
		if v, done := verdict(consumed); done && v != p || !done && p != Opaque {
			t.Fatalf("protocol %v for consumed bytes %q (verdict %v, final %v)", p, consumed, v, done)
		}
		if p != Opaque && Partial(consumed) != p {
			t.Fatalf("Partial(%q) = %v, Detect said %v", consumed, Partial(consumed), p)
		}
		if q := Partial(consumed); q == HTTP2 && !strings.HasPrefix(Preface, string(consumed[:min(len(consumed), len(Preface))])) {
			t.Fatalf("Partial says HTTP/2 for %q", consumed)
		}
		all, err := io.ReadAll(dc)
		if err != nil {
			t.Fatalf("reading on: %v", err)
		}
		if !bytes.Equal(all, data) {
			t.Fatalf("replayed %q, sent %q", all, data)
		}
	})
}
