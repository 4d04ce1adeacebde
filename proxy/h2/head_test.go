package h2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRoundTripHead: a request given as its head reaches the server with its method,
// authority, path and fields (repeated ones in order); the response comes back as from
// RoundTrip; ctx ending before the response headers resets the stream.
func TestRoundTripHead(t *testing.T) {
	started, cancelled := make(chan struct{}, 1), make(chan struct{})
	tr, base := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-r.Context().Done()
			close(cancelled)
			return
		}
		w.Header().Set("X-Seen", r.Method+" "+r.Host+" "+r.URL.RequestURI()+" "+strings.Join(r.Header.Values("X-Multi"), ",")+" "+r.Header.Get("User-Agent"))
		io.WriteString(w, "hello")
	}))
	addr := strings.TrimPrefix(base, "http://")
	head := &RequestHead{Method: "GET", Authority: "web.ns.svc.cluster.local:80", Path: "/a?b=c", Fields: func(enc func(string, string)) {
		enc("x-multi", "1")
		enc("user-agent", "test")
		enc("x-multi", "2")
	}}
	resp, err := tr.RoundTripHead(context.Background(), addr, head)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "GET web.ns.svc.cluster.local:80 /a?b=c 1,2 test"; resp.StatusCode != 200 || string(body) != "hello" || resp.Header.Get("X-Seen") != want {
		t.Fatalf("got %d %q X-Seen %q, want 200 hello %q", resp.StatusCode, body, resp.Header.Get("X-Seen"), want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTripHead(ctx, addr, &RequestHead{Method: "GET", Authority: "x", Path: "/slow", Fields: func(func(string, string)) {}})
		errc <- err
	}()
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

// TestRoundTripFieldsStreamsAreReusedSafely: responses taken as fields by many concurrent
// callers, some reading their body to the end (their streams are pooled and reused),
// some closing it early or getting a reset, each get their own status, fields, body and
// trailers (run with -race: a stream reused while its read loop or its previous caller
// still held it would mix them up or race).
func TestRoundTripFieldsStreamsAreReusedSafely(t *testing.T) {
	tr, base := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.Header.Get("X-N")
		switch r.URL.Path {
		case "/small":
			w.Header().Set("X-N", n)
			io.WriteString(w, "small "+n)
		case "/large":
			w.Header().Set("X-N", n)
			w.Header().Set("Content-Length", "40000")
			io.WriteString(w, strings.Repeat(n[len(n)-1:], 40000))
		case "/trailers":
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set("X-N", n)
			io.WriteString(w, "t"+n)
			w.Header().Set("X-Sum", n)
		case "/empty":
			w.Header().Set("X-N", n)
			w.WriteHeader(http.StatusNoContent)
		case "/reset":
			w.Header().Set("X-N", n)
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	}))
	addr := strings.TrimPrefix(base, "http://")
	paths := []string{"/small", "/large", "/trailers", "/empty", "/reset", "/small"}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			errs <- func() error {
				for i := range 150 {
					n := strconv.Itoa(g*1000 + i)
					path := paths[(g+i)%len(paths)]
					resp, err := tr.RoundTripFields(context.Background(), addr, &RequestHead{Method: "GET", Authority: "a", Path: path,
						Fields: func(enc func(string, string)) { enc("x-n", n) }})
					if err != nil {
						return fmt.Errorf("%s %s: %v", path, n, err)
					}
					var got string
					for _, f := range resp.Fields {
						if f.Name == "x-n" {
							got = f.Value
						}
					}
					if got != n {
						resp.Close()
						return fmt.Errorf("%s: x-n %q, want %q", path, got, n)
					}
					if i%5 == 4 && path != "/empty" {
						resp.Close() // early, before the body's end
						continue
					}
					body, err := io.ReadAll(resp)
					var want string
					switch path {
					case "/small":
						want = "small " + n
					case "/large":
						want = strings.Repeat(n[len(n)-1:], 40000)
					case "/trailers":
						want = "t" + n
						if tr := resp.Trailers(); err == nil && (len(tr) != 1 || tr[0].Name != "x-sum" || tr[0].Value != n) {
							err = fmt.Errorf("trailers %v", tr)
						}
					case "/reset":
						if err == nil {
							err = errors.New("no error after a reset")
						} else {
							err = nil
						}
						want = string(body)
					}
					resp.Close()
					if err != nil || string(body) != want {
						return fmt.Errorf("%s %s: body %.20q (%d bytes), error %v", path, n, body, len(body), err)
					}
				}
				return nil
			}()
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
