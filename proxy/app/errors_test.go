package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/forward"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// staticDiscovery is a hand-written outbound.Discovery serving backends set by the test.
type staticDiscovery struct {
	mu    sync.Mutex
	names map[string]*forward.Backend
}

func (d *staticDiscovery) Name(_ context.Context, authority string) (*forward.Backend, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	be, ok := d.names[authority]
	return be, ok, nil
}

func (d *staticDiscovery) Addr(context.Context, netip.AddrPort) (*forward.Backend, bool, error) {
	return nil, false, nil
}

func newBackend(d *staticDiscovery, authority string, opts balance.Options) *forward.Backend {
	be := &forward.Backend{Name: authority, Balancer: balance.New[*forward.Endpoint](opts)}
	d.mu.Lock()
	if d.names == nil {
		d.names = map[string]*forward.Backend{}
	}
	d.names[authority] = be
	d.mu.Unlock()
	return be
}

var testMetrics = metrics.New()

func endpoint(addr netip.AddrPort, h2 bool) *balance.Endpoint[*forward.Endpoint] {
	return balance.NewEndpoint(addr, forward.NewEndpoint(addr, h2, testMetrics.HTTP(metrics.Labels("target_addr", addr.String()))))
}

func freePort(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return a
}

func TestConnectFailureIs502(t *testing.T) {
	closed := freePort(t)
	p := startProxy(t, closed, netip.AddrPort{}, nil, nil)
	_, entry, _ := p.Addrs()
	resp, _ := get(t, clientTo(entry, false), "http://gone.example/")
	if resp.StatusCode != 502 || resp.Header.Get("L5d-Proxy-Error") == "" {
		t.Fatalf("got %d with l5d-proxy-error %q; want 502 with a reason", resp.StatusCode, resp.Header.Get("L5d-Proxy-Error"))
	}
	if !strings.Contains(scrape(t, p), `status_code="502",classification="failure"} 1`) {
		t.Errorf("502 not recorded as a failure:\n%s", scrape(t, p))
	}
}

func TestNoEndpointsFailfast504Then503(t *testing.T) {
	d := &staticDiscovery{}
	be := newBackend(d, "empty.ns.svc.cluster.local:80", balance.Options{Failfast: 50 * time.Millisecond})
	app, appAddr := startEcho(t)
	_ = app
	p := startProxy(t, freePort(t), netip.AddrPort{}, nil, d)
	_, entry, _ := p.Addrs()
	c := clientTo(entry, false)
	resp, _ := get(t, c, "http://empty.ns.svc.cluster.local:80/")
	if resp.StatusCode != 504 || resp.Header.Get("L5d-Proxy-Error") == "" {
		t.Fatalf("first request: %d %q; want 504 (failfast) with l5d-proxy-error", resp.StatusCode, resp.Header.Get("L5d-Proxy-Error"))
	}
	resp, _ = get(t, c, "http://empty.ns.svc.cluster.local:80/")
	if resp.StatusCode != 503 {
		t.Fatalf("request during failfast: %d; want 503", resp.StatusCode)
	}
	be.Balancer.Set([]*balance.Endpoint[*forward.Endpoint]{endpoint(appAddr, false)})
	resp, body := get(t, c, "http://empty.ns.svc.cluster.local:80/hi")
	if resp.StatusCode != 200 || body != "GET /hi " {
		t.Fatalf("after an endpoint appeared: %d %q", resp.StatusCode, body)
	}
}

func TestQueueFullIs503AndQueuedRequestsProceed(t *testing.T) {
	d := &staticDiscovery{}
	be := newBackend(d, "busy.ns.svc.cluster.local:80", balance.Options{Capacity: 1, Failfast: time.Minute})
	_, appAddr := startEcho(t)
	p := startProxy(t, freePort(t), netip.AddrPort{}, nil, d)
	_, entry, _ := p.Addrs()
	c := clientTo(entry, false)
	queued := make(chan int, 1)
	go func() {
		resp, err := c.Get("http://busy.ns.svc.cluster.local:80/")
		if err != nil {
			queued <- -1
			return
		}
		resp.Body.Close()
		queued <- resp.StatusCode
	}()
	eventually.True(t, "a queued request", func() bool { return be.Balancer.Queued() == 1 })
	resp, _ := get(t, c, "http://busy.ns.svc.cluster.local:80/")
	if resp.StatusCode != 503 || resp.Header.Get("L5d-Proxy-Error") == "" {
		t.Fatalf("request over queue capacity: %d; want 503 with l5d-proxy-error", resp.StatusCode)
	}
	be.Balancer.Set([]*balance.Endpoint[*forward.Endpoint]{endpoint(appAddr, false)})
	if got := <-queued; got != 200 {
		t.Fatalf("queued request finished with %d; want 200 once an endpoint appeared", got)
	}
}

// TestHTTP1CarriedAsHTTP2ToH2Endpoints checks both halves of the protocol upgrade: the
// outbound proxy speaks HTTP/2 with l5d-orig-proto to an endpoint with the h2 hint, and
// through a full chain the application still sees a plain HTTP/1.1 request.
func TestHTTP1CarriedAsHTTP2ToH2Endpoints(t *testing.T) {
	var sawProto, sawHeader atomic.Value
	peer, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawProto.Store(r.Proto)
		sawHeader.Store(r.Header.Get("L5d-Orig-Proto"))
	}))
	app, appAddr := startEcho(t)
	_ = app
	in := startProxy(t, netip.AddrPort{}, appAddr, nil, nil)
	inAddr, _, _ := in.Addrs()

	d := &staticDiscovery{}
	newBackend(d, "peer.ns.svc.cluster.local:80", balance.Options{}).Balancer.Set(
		[]*balance.Endpoint[*forward.Endpoint]{endpoint(peer, true)})
	newBackend(d, "web.ns.svc.cluster.local:80", balance.Options{}).Balancer.Set(
		[]*balance.Endpoint[*forward.Endpoint]{endpoint(inAddr, true)})
	out := startProxy(t, freePort(t), netip.AddrPort{}, nil, d)
	_, entry, _ := out.Addrs()
	c := clientTo(entry, false)

	get(t, c, "http://peer.ns.svc.cluster.local:80/")
	if sawProto.Load() != "HTTP/2.0" || sawHeader.Load() != "HTTP/1.1" {
		t.Fatalf("h2 endpoint saw %v with l5d-orig-proto %q; want HTTP/2.0 and HTTP/1.1", sawProto.Load(), sawHeader.Load())
	}
	for i := range 5 {
		resp, body := get(t, c, fmt.Sprintf("http://web.ns.svc.cluster.local:80/x%d", i))
		if resp.StatusCode != 200 || body != fmt.Sprintf("GET /x%d ", i) {
			t.Fatalf("through the chain: %d %q", resp.StatusCode, body)
		}
		if p := resp.Header.Get("X-App-Proto"); p != "HTTP/1.1" {
			t.Errorf("app saw %s; want HTTP/1.1 restored by the inbound proxy", p)
		}
		if h := resp.Header.Get("X-Saw-Orig-Proto"); h != "" {
			t.Errorf("app saw l5d-orig-proto %q; the inbound proxy must strip it", h)
		}
	}
}

// TestEndpointChurnWithoutFailures adds and removes endpoints while requests flow; no
// request may fail, and traffic must move to the new endpoint.
func TestEndpointChurnWithoutFailures(t *testing.T) {
	var hitsA, hitsB atomic.Int64
	a, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hitsA.Add(1); io.WriteString(w, "a") }))
	b, _ := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hitsB.Add(1); io.WriteString(w, "b") }))
	d := &staticDiscovery{}
	be := newBackend(d, "churn.ns.svc.cluster.local:80", balance.Options{})
	epA, epB := endpoint(a, false), endpoint(b, false)
	be.Balancer.Set([]*balance.Endpoint[*forward.Endpoint]{epA})
	p := startProxy(t, freePort(t), netip.AddrPort{}, nil, d)
	_, entry, _ := p.Addrs()
	c := clientTo(entry, false)

	var failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://churn.ns.svc.cluster.local:80/")
				if err != nil {
					failures.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
				}
			}
		}()
	}
	// Add b, then remove a (a scale-out followed by a scale-in), then add a back and
	// remove b: each step must move traffic without failing any request in flight.
	eventually.True(t, "traffic to a", func() bool { return hitsA.Load() > 50 })
	be.Balancer.Set([]*balance.Endpoint[*forward.Endpoint]{epA, epB})
	be.Balancer.Set([]*balance.Endpoint[*forward.Endpoint]{epB})
	eventually.True(t, "traffic to b", func() bool { return hitsB.Load() > 50 })
	be.Balancer.Set([]*balance.Endpoint[*forward.Endpoint]{epA, epB})
	be.Balancer.Set([]*balance.Endpoint[*forward.Endpoint]{epA})
	before := hitsA.Load()
	eventually.True(t, "traffic back to a", func() bool { return hitsA.Load() > before+50 })
	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d requests failed during endpoint changes", n)
	}
}
