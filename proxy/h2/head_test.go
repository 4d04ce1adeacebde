package h2

import (
	"context"
	"io"
	"net/http"
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
