package h2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// start serves h on a loopback listener with Server and returns a Transport to it.
func start(t testing.TB, h http.Handler) (*Transport, string) {
	t.Helper()
	addr := serve(t, &Server{Handler: h})
	tr := tcpTransport()
	t.Cleanup(tr.CloseIdleConnections)
	return tr, "http://" + addr
}

func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Path", r.URL.RequestURI())
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("Req-Trailer"))
		if r.URL.Path == "/trailers" {
			w.Header().Set("Trailer", "Grpc-Status")
			w.Write(body)
			w.Header().Set("Grpc-Status", "0")
			w.Header().Set(http.TrailerPrefix+"Grpc-Message", "ok")
			return
		}
		if r.URL.Path == "/empty" {
			w.WriteHeader(204)
			return
		}
		w.Write(body)
	})
}

func do(t *testing.T, tr *Transport, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, b
}

func TestRequestsAndResponses(t *testing.T) {
	tr, base := start(t, echo())
	req, _ := http.NewRequest("GET", base+"/a/b?c=d", nil)
	req.Host = "web.ns.svc.cluster.local:8080"
	resp, body := do(t, tr, req)
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("X-Path") != "/a/b?c=d" || resp.Header.Get("X-Host") != req.Host {
		t.Fatalf("GET: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	req, _ = http.NewRequest("POST", base+"/p", strings.NewReader("hello"))
	resp, body = do(t, tr, req)
	if string(body) != "hello" || resp.Header.Get("X-Method") != "POST" {
		t.Fatalf("POST: %q %v", body, resp.Header)
	}
	req, _ = http.NewRequest("GET", base+"/empty", nil)
	if resp, body = do(t, tr, req); resp.StatusCode != 204 || len(body) != 0 {
		t.Fatalf("204: %d %q", resp.StatusCode, body)
	}
	req, _ = http.NewRequest("POST", base+"/trailers", io.NopCloser(strings.NewReader("grpc-frame")))
	req.ContentLength = -1
	req.Trailer = http.Header{"Req-Trailer": {"v"}}
	resp, body = do(t, tr, req)
	if string(body) != "grpc-frame" || resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "ok" || resp.Header.Get("X-Req-Trailer") != "v" {
		t.Fatalf("trailers: body %q trailer %v header %v", body, resp.Trailer, resp.Header)
	}
}

func TestLargeBodiesBothWaysRespectFlowControl(t *testing.T) {
	tr, base := start(t, echo())
	big := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16) // 10 MiB, beyond every window
	req, _ := http.NewRequest("PUT", base+"/big", bytes.NewReader(big))
	_, body := do(t, tr, req)
	if sha256.Sum256(body) != sha256.Sum256(big) {
		t.Fatalf("echoed %d bytes, want the same 10 MiB back", len(body))
	}
}

func TestManyConcurrentStreamsShareOneConnection(t *testing.T) {
	var conns sync.Map
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns.Store(r.RemoteAddr, true)
		io.WriteString(w, r.URL.Path)
	})
	tr, base := start(t, h)
	var wg sync.WaitGroup
	errs := make(chan error, 2000)
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				path := fmt.Sprintf("/%d/%d", g, i)
				req, _ := http.NewRequest("GET", base+path, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != path {
					errs <- fmt.Errorf("got %q for %s", b, path)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := 0
	conns.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("2000 requests used %d connections, want 1", n)
	}
}

func TestStreamingBothWays(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush() // headers first, as gRPC servers do
		buf := make([]byte, 64)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(bytes.ToUpper(buf[:n]))
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	})
	tr, base := start(t, h)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/stream", pr)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, msg := range []string{"ping", "pong", "done"} {
		pw.Write([]byte(msg))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(resp.Body, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != strings.ToUpper(msg) {
			t.Fatalf("got %q for %q: the response did not stream", got, msg)
		}
	}
	pw.Close()
}

func TestClientCancelResetsTheStream(t *testing.T) {
	started, cancelled := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		close(cancelled)
	})
	tr, base := start(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/slow", nil)
	errc := make(chan error, 1)
	go func() { _, err := tr.RoundTrip(req); errc <- err }()
	<-started
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled request succeeded")
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's handler never saw the cancellation")
	}
}

func TestInteroperatesWithGoHTTP2(t *testing.T) {
	// Our client against net/http's HTTP/2 server, and net/http's client against ours.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	std := &http.Server{Handler: echo(), Protocols: new(http.Protocols)}
	std.Protocols.SetUnencryptedHTTP2(true)
	go std.Serve(ln)
	defer std.Close()
	d := net.Dialer{}
	ours := &Transport{Connect: func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/trailers", strings.NewReader("x"))
	resp, body := do(t, ours, req)
	if string(body) != "x" || resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("against net/http's server: %q %v", body, resp.Trailer)
	}

	_, base := start(t, echo())
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	resp2, err := (&http.Client{Transport: tr}).Post(base+"/trailers", "text/plain", strings.NewReader("y"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if string(b) != "y" || resp2.Trailer.Get("Grpc-Status") != "0" || resp2.ProtoMajor != 2 {
		t.Fatalf("net/http's client against our server: %q %v proto %d", b, resp2.Trailer, resp2.ProtoMajor)
	}
}

// TestRequestContextEndsWithConnection: a running handler's request context is
// cancelled when ServeConn's context ends (the connection closes and aborts its streams).
func TestRequestContextEndsWithConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started, ended := make(chan struct{}), make(chan error, 1)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			ended <- r.Context().Err()
		case <-time.After(5 * time.Second):
			ended <- errors.New("request context still live 5s after the connection's context ended")
		}
	})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		srv.ServeConn(ctx, c)
	}()
	tr := tcpTransport()
	defer tr.CloseIdleConnections()
	go func() {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
		if resp, err := tr.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	cancel()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler saw %v, want context.Canceled", err)
	}
	<-served
}

// TestAdoptHeader: a handler may hand its own header map to the response before it used
// Header; afterwards the map is the response's and adopting another one is refused.
func TestAdoptHeader(t *testing.T) {
	tr, base := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := w.(interface{ AdoptHeader(http.Header) bool })
		if r.URL.Path == "/late" {
			w.Header().Set("X-Set", "1")
			if a.AdoptHeader(http.Header{"X-Adopted": {"no"}}) {
				t.Error("adopted a header map after Header was used")
			}
			return
		}
		if a.AdoptHeader(nil) {
			t.Error("adopted a nil header map")
		}
		if !a.AdoptHeader(http.Header{"X-Adopted": {"yes"}, "Content-Type": {"text/plain"}}) {
			t.Error("refused a header map before Header was used")
		}
		w.Header().Set("X-Set", "2")
		io.WriteString(w, "ok")
	}))
	for path, want := range map[string][2]string{"/": {"yes", "2"}, "/late": {"", "1"}} {
		req, _ := http.NewRequest("GET", base+path, nil)
		resp, _ := do(t, tr, req)
		if got := [2]string{resp.Header.Get("X-Adopted"), resp.Header.Get("X-Set")}; got != want {
			t.Errorf("%s: X-Adopted, X-Set = %q, want %q", path, got, want)
		}
	}
}

// tcpTransport is a Transport dialling plain TCP, as the tests' clients of a local server use.
func tcpTransport() *Transport {
	var d net.Dialer
	return &Transport{Connect: func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}
}
