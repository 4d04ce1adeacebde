package meshtls

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// writeCounter counts the writes made on a connection.
type writeCounter struct {
	net.Conn
	writes *atomic.Int32
}

func (c writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestMultiRecordWriteIsOneTransportWrite: a write of more than one TLS record's worth
// over mesh TLS reaches the socket in one write (not one per record), and arrives whole
// (the server echoes it); a small write is one write too.
func TestMultiRecordWriteIsOneTransportWrite(t *testing.T) {
	pki, err := scriptedcp.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := newCreds(t, pki, serverID), newCreds(t, pki, clientID)
	addr, out := serve(t, NewTerminator(srv), "")
	var writes atomic.Int32
	base := forward.TCPConnector(5*time.Second, 0)
	counted := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := base(ctx, addr)
		if err != nil {
			return nil, err
		}
		return writeCounter{Conn: c, writes: &writes}, nil
	}
	c, err := NewConnector(cli, counted, func(netip.AddrPort) string { return serverID }).Connect(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if res := <-out; res.Kind != Terminated {
		t.Fatalf("server saw kind %v", res.Kind)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	for _, size := range []int{100, 16<<10 + 9, 40000, 200 << 10} {
		msg := bytes.Repeat([]byte{'x'}, size)
		msg[size-1] = 'y'
		before := writes.Load()
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if n := writes.Load() - before; n != 1 {
			t.Errorf("a %d-byte write took %d transport writes, want 1", size, n)
		}
		got := make([]byte, size)
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo of %d bytes: %v (intact: %v)", size, err, bytes.Equal(got, msg))
		}
	}
}
