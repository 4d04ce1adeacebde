package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/l5d-go/l5d/proxy/rawsock"
)

// TestIdleConnectionHoldsNoBuffer: over a real loopback connection that can wait without
// a buffer (rawsock), a Reader and Writer serving keep-alive requests hold neither buffer
// while they wait for the next request (checked as the reader is about to wait), the
// response written before is flushed, and the next requests, one of them longer than a
// buffer, are read whole.
func TestIdleConnectionHoldsNoBuffer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	conn := rawsock.Wrap(sc)
	defer conn.Close()
	if _, ok := conn.(IdleReader); !ok {
		t.Fatalf("%T is not an IdleReader", conn)
	}
	r, w := NewReader(conn), NewWriter(conn)
	r.FlushBefore(w, nil)
	waits, held := 0, 0
	r.BeforeRead = func(buffered int) {
		if buffered == 0 {
			waits++
			if r.buf != nil || w.buf != nil {
				held++
			}
		}
	}
	long := "GET /long HTTP/1.1\r\nHost: a\r\nX-Long: " + strings.Repeat("x", 3*defaultBufSize) + "\r\n\r\n"
	requests := []string{"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", long, "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"}
	done := make(chan error, 1)
	go func() {
		br := bufio.NewReader(client)
		for _, req := range requests {
			if _, err := io.WriteString(client, req); err != nil {
				done <- err
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				done <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				done <- io.ErrUnexpectedEOF
				return
			}
		}
		done <- nil
	}()
	var h Head
	for i := range requests {
		if err := r.ReadRequest(&h); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if i == 1 && len(h.Get("x-long")) != 3*defaultBufSize {
			t.Fatalf("request 2: X-Long has %d bytes, want %d", len(h.Get("x-long")), 3*defaultBufSize)
		}
		r.Consume(&h)
		w.WriteString("HTTP/1.1 204 No Content\r\n\r\n")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("client: %v", err)
	}
	if w.buf != nil {
		t.Error("the writer holds a buffer after Flush")
	}
	if waits == 0 || held > 0 {
		t.Errorf("%d of %d waits for input held a buffer", held, waits)
	}
}
