package tlssni

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// clientHello returns the bytes of a real crypto/tls ClientHello for name.
func clientHello(t *testing.T, name string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		tls.Client(a, &tls.Config{ServerName: name, InsecureSkipVerify: name == ""}).Handshake()
		a.Close()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	b.Close()
	return append(hdr, body...)
}

// TestPeek: the server name of a real ClientHello is read, and the connection returned
// yields the hello and what follows byte for byte; bytes that are not TLS are an error
// and still replayed.
func TestPeek(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		sni  string
		ok   bool
	}{
		{"sni", clientHello(t, "api.example.com"), "api.example.com", true},
		{"no sni", clientHello(t, ""), "", true},
		{"not tls", []byte("GET / HTTP/1.1\r\n\r\n"), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer b.Close()
			sent := append(append([]byte{}, tc.in...), "after"...)
			go func() { a.Write(sent); a.Close() }()
			sni, replay, err := Peek(b, 5*time.Second)
			if (err == nil) != tc.ok || sni != tc.sni {
				t.Fatalf("Peek: %q %v, want %q ok=%v", sni, err, tc.sni, tc.ok)
			}
			got, _ := io.ReadAll(replay)
			if !bytes.Equal(got, sent) {
				t.Fatalf("replayed %d bytes, want the %d sent", len(got), len(sent))
			}
		})
	}
}
