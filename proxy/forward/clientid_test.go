package forward

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/h2"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// identityApp answers with the l5d-client-id and l5d-dst-override values it got.
func identityApp(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "id=%q dst=%q", r.Header.Values("L5d-Client-Id"), r.Header.Values("L5d-Dst-Override"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// TestInboundClientIdentityHeader: on the inbound side, whatever l5d-client-id and
// l5d-dst-override a client sends never reach the application; over mesh TLS the
// application gets l5d-client-id with the client's verified identity. On the HTTP/1 fast
// path, the general handler (HTTP/1) and HTTP/2.
func TestInboundClientIdentityHeader(t *testing.T) {
	app := identityApp(t)
	reg := metrics.New()
	ep := NewEndpoint(app, false, reg.HTTP(metrics.Labels("direction", "inbound")))
	bal := balance.New[*Endpoint](balance.Options{})
	bal.Set([]*balance.Endpoint[*Endpoint]{balance.NewEndpoint(app, ep)})
	h := &Handler{
		Router:  fixedRouter{&Backend{Name: app.String(), Balancer: bal}},
		Clients: NewClients(ClientOptions{Connect: TCPConnector(time.Second, 0)}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const id = "web.ns.serviceaccount.identity.linkerd.cluster.local"
	// serve listens for one kind of connection: fast HTTP/1 (handing over to the general
	// server), general HTTP/1 only, or HTTP/2.
	serve := func(kind string, ci func() *ConnInfo) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		general := &http.Server{Handler: h, ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return WithConnInfo(ctx, ci())
		}}
		gl := newOneConnListener()
		go general.Serve(gl)
		t.Cleanup(func() { general.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				switch kind {
				case "fast":
					go h.ServeHTTP1(ctx, c, ci(), func([]byte) { c.Close() })
				case "general":
					gl.ch <- c
				case "h2":
					go h.ServeHTTP2(ctx, c, ci())
				}
			}
		}()
		return ln.Addr().String()
	}
	spoof := func(req *http.Request) {
		req.Header.Set("L5d-Client-Id", "admin.ns.serviceaccount.identity.linkerd.cluster.local")
		req.Header.Set("L5d-Dst-Override", "admin.ns.svc.cluster.local:80")
	}
	for _, c := range []struct {
		name string
		ci   func() *ConnInfo
		want string
	}{
		{"plaintext", func() *ConnInfo { return &ConnInfo{Direction: "inbound", OrigDst: app} }, `id=[] dst=[]`},
		{"mesh TLS", func() *ConnInfo { return &ConnInfo{Direction: "inbound", OrigDst: app, TLS: true, ClientID: id} }, `id=["` + id + `"] dst=[]`},
	} {
		for _, kind := range []string{"fast", "general", "h2"} {
			addr := serve(kind, c.ci)
			for i := range 2 { // the cached value serves later requests too
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				spoof(req)
				var resp *http.Response
				var err error
				if kind == "h2" {
					req.Header.Set(HeaderOrigProto, "HTTP/1.1") // from a client proxy
					tr := &h2.Transport{Connect: TCPConnector(time.Second, 0)}
					resp, err = tr.RoundTrip(req)
					defer tr.CloseIdleConnections()
				} else {
					resp, err = (&http.Client{Transport: &http.Transport{DisableKeepAlives: i == 1}}).Do(req)
				}
				if err != nil {
					t.Fatalf("%s %s: %v", c.name, kind, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if got := string(body); got != c.want {
					t.Errorf("%s, %s: the app got %s, want %s", c.name, kind, got, c.want)
				}
			}
		}
	}
	// Outbound, the application's l5d-dst-override goes on (it picks the target).
	out := &ConnInfo{Direction: "outbound", OrigDst: app}
	addr := serve("fast", func() *ConnInfo { return out })
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	spoof(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `dst=["admin.ns.svc.cluster.local:80"]`) {
		t.Errorf("outbound: the app got %s", body)
	}
}

// oneConnListener is a net.Listener fed connections through ch.
type oneConnListener struct {
	ch   chan net.Conn
	done chan struct{}
}

func newOneConnListener() *oneConnListener {
	return &oneConnListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *oneConnListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }
