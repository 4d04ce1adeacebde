package meshtls

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// clientHello returns the first flight of a TLS client asking for sni.
func clientHello(t testing.TB, sni string) []byte {
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		c.Handshake()
	}()
	buf := make([]byte, 4096)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := b.Read(buf)
	a.Close()
	b.Close()
	return buf[:n]
}

// FuzzTerminatorAccept feeds arbitrary first bytes (network input) to the inbound TLS
// recogniser: it never panics, and whatever it hands back as Plain or Passthrough carries
// exactly the bytes the client sent.
func FuzzTerminatorAccept(f *testing.F) {
	pki, err := scriptedcp.NewPKI()
	if err != nil {
		f.Fatal(err)
	}
	term := NewTerminator(newCreds(f, pki, serverID))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5})
	f.Add(clientHello(f, "app.example.com"))
	f.Add(clientHello(f, serverID))
	f.Add([]byte{0x16})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		runOne(t, term, data)
	})
}

func runOne(t *testing.T, term *Terminator, data []byte) {
	cli, srv := net.Pipe()
	go io.Copy(io.Discard, cli) // what the server answers (alerts, a handshake)
	go func() {
		cli.Write(data)
		cli.Close()
	}()
	res, err := term.Accept(srv, 200*time.Millisecond)
	if err != nil {
		srv.Close()
		return
	}
	if res.Kind == Terminated {
		res.Conn.Close()
		return
	}
	got, _ := io.ReadAll(res.Conn)
	srv.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("kind %v replayed %d bytes %x, client sent %x", res.Kind, len(got), got, data)
	}
}
