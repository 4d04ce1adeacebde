package tcpconnect

import (
	"context"
	"net"
	"testing"
	"time"
)

// BenchmarkDial opens and closes loopback connections with net.Dialer's timeout and with
// a Dialer's: the cost of the look at the socket (a context, a timer, the control hook)
// per connect. Compare medians of several runs on the same machine:
// go test -run XXX -bench Dial -benchtime=5000x -count=8 ./internal/tcpconnect
func BenchmarkDial(b *testing.B) {
	ln := listen(b)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	for _, bc := range []struct {
		name string
		dial func(context.Context, string) (net.Conn, error)
	}{
		{"net.Dialer", func(ctx context.Context, a string) (net.Conn, error) {
			d := net.Dialer{Timeout: time.Second, KeepAlive: -1}
			return d.DialContext(ctx, "tcp", a)
		}},
		{"tcpconnect", (&Dialer{Timeout: time.Second, KeepAlive: -1}).DialContext},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := bc.dial(context.Background(), addr)
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
