package forward

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// FuzzFastPathHead feeds arbitrary bytes as a client's request stream to the HTTP/1 fast
// path (ServeHTTP1) forwarding to a loopback app, and checks that the proxy never panics
// or hangs and that whatever it forwards is well-formed: the app reads each request with
// net/http's http.ReadRequest and its body to the end (a body cut short because the
// client's was is fine; a parse error is not).
func FuzzFastPathHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: app\r\n\r\n",
		"POST /a?b=c HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n\r\nhello",
		"PUT / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n5;e=1\r\nhello\r\n0\r\nX: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: app\r\nConnection: X-A, close\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
		"GET /%61 HTTP/1.1\r\nHost: app\r\n\r\nGET /b HTTP/1.1\r\nHost: app\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: app\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: app\r\n\r\n",
		"GET http://app/x HTTP/1.1\r\nHost: app\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: app\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: app\r\n\nGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
		"GET / HTTP/1.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	var mu sync.Mutex
	var bad []string
	var handlers sync.WaitGroup
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer handlers.Done()
				defer c.Close()
				raw := &recorder{r: c}
				br := bufio.NewReader(raw)
				for {
					raw.got = raw.got[:0]
					req, err := http.ReadRequest(br)
					if err != nil {
						if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) {
							mu.Lock()
							bad = append(bad, fmt.Sprintf("%v in %q", err, raw.got))
							mu.Unlock()
						}
						return
					}
					if _, err := io.Copy(io.Discard, req.Body); err != nil {
						// A body cut short (the client's was) is fine; a malformed one is not.
						// net/http reports a trailer section cut short as "unexpected EOF
						// reading trailer" or, when its end is not buffered, as a
						// "suspiciously long trailer".
						truncated := errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
							strings.Contains(err.Error(), "unexpected EOF") || strings.Contains(err.Error(), "suspiciously long trailer")
						if !truncated {
							mu.Lock()
							bad = append(bad, fmt.Sprintf("body: %v in %q", err, raw.got))
							mu.Unlock()
						}
						return
					}
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
						return
					}
				}
			}()
		}
	}()
	target := ln.Addr().(*net.TCPAddr).AddrPort()
	var upstream []net.Conn
	connect := func(ctx context.Context, addr string) (net.Conn, error) {
		handlers.Add(1) // the app serves each connection in one handler
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err != nil {
			handlers.Done()
			return nil, &ConnectError{Addr: addr, Err: err}
		}
		upstream = append(upstream, c)
		return c, nil
	}
	reg := metrics.New()
	f.Fuzz(func(t *testing.T, in []byte) {
		mu.Lock()
		bad = bad[:0]
		mu.Unlock()
		ep := NewEndpoint(target, false, reg.HTTP(metrics.Labels("direction", "outbound")))
		bal := balance.New[*Endpoint](balance.Options{})
		bal.Set([]*balance.Endpoint[*Endpoint]{balance.NewEndpoint(target, ep)})
		h := &Handler{
			Router:  fixedRouter{&Backend{Name: target.String(), Balancer: bal}},
			Clients: NewClients(ClientOptions{Connect: connect}),
		}
		client, server := tcpPair(t)
		defer client.Close()
		served := make(chan struct{})
		go func() {
			defer close(served)
			h.ServeHTTP1(context.Background(), server, &ConnInfo{Direction: "outbound", OrigDst: target}, func([]byte) { server.Close() })
		}()
		go func() {
			client.Write(in)
			client.(*net.TCPConn).CloseWrite()
		}()
		go io.Copy(io.Discard, client)
		select {
		case <-served:
		case <-time.After(20 * time.Second):
			t.Fatalf("the fast path still serves %q", in)
		}
		for _, c := range upstream {
			c.Close()
		}
		upstream = upstream[:0]
		handlers.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("from %q the app got a malformed request: %s", in, bad[0])
		}
	})
}

// recorder keeps what was read through it.
type recorder struct {
	r   io.Reader
	got []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.got = append(r.got, p[:n]...)
	return n, err
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
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
	return client, server
}
