package main

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeAdmin stands for the proxy's admin server: /ready turns 200 after n calls, and
// /shutdown is recorded.
func fakeAdmin(t *testing.T, notReadyFor int32) (port string, shutdowns *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	shutdowns = new(atomic.Int32)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready":
			if calls.Add(1) <= notReadyFor {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		case "/shutdown":
			shutdowns.Add(1)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).AddrPort().String()[strings.LastIndex(ln.Addr().String(), ":")+1:], shutdowns
}

func TestWaitsThenRunsAndShutsDown(t *testing.T) {
	port, shutdowns := fakeAdmin(t, 2)
	if code := run([]string{"--port", port, "--timeout", "30s", "--shutdown", "--", "sh", "-c", "exit 3"}); code != 3 {
		t.Fatalf("exit code %d, want the command's 3", code)
	}
	if shutdowns.Load() != 1 {
		t.Fatalf("shutdown requests: %d", shutdowns.Load())
	}
}

func TestTimesOut(t *testing.T) {
	port, _ := fakeAdmin(t, 1<<30)
	if code := run([]string{"--port", port, "--timeout", "300ms"}); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
}
