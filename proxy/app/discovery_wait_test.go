package app

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// discoveredPair is a client proxy whose original destination is the server proxy's
// inbound listener, seen as a service address (inside the profile networks): if the
// client forwarded a request there itself, the server would see it in plaintext.
func discoveredPair(t *testing.T, m *meshCP) (client, server *Proxy, serverIn netip.AddrPort) {
	t.Helper()
	return discoveredPairWith(t, m, nil)
}

// discoveredPairWith is discoveredPair with extra environment for both proxies.
func discoveredPairWith(t *testing.T, m *meshCP, extra map[string]string) (client, server *Proxy, serverIn netip.AddrPort) {
	t.Helper()
	env := func(local string) map[string]string {
		e := m.env(local)
		e[config.EnvDestinationProfileNetworks] = "127.0.0.0/8"
		maps.Copy(e, extra)
		return e
	}
	server = startProxy(t, netip.AddrPort{}, namedApp(t, "app"), env(serverIdentity), nil)
	serverIn, _, _ = server.Addrs()
	client = startProxy(t, serverIn, netip.AddrPort{}, env(clientIdentity), nil)
	waitReady(t, server)
	waitReady(t, client)
	// The service's port is the original destination's, as for a ClusterIP.
	m.dst.Set(fmt.Sprint("web.ns.svc.cluster.local:", serverIn.Port()), scriptedcp.Endpoint{Addr: serverIn, Identity: serverIdentity, H2: true})
	return client, server, serverIn
}

// inboundRequests returns how many requests the server's inbound proxy got over mesh TLS
// from the client and in plaintext.
func inboundRequests(t *testing.T, server *Proxy) (mtls, plain int) {
	t.Helper()
	for _, l := range strings.Split(scrape(t, server), "\n") {
		if !strings.HasPrefix(l, `request_total{direction="inbound",authority=`) {
			continue
		}
		n, err := strconv.Atoi(l[strings.LastIndexByte(l, ' ')+1:])
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		switch {
		case strings.Contains(l, `tls="true",client_id="`+clientIdentity+`"}`):
			mtls += n
		case strings.Contains(l, `tls="no_identity"`):
			plain += n
		}
	}
	return mtls, plain
}

// TestRequestBeforeDiscoveryAnswersGoesOverMTLS: an application request arrives while
// the Destination service has not answered for its target (it holds its answers, then
// dies and comes back, as a destination pod that is not ready yet). The request waits and
// reaches the endpoint over mesh TLS with the client's identity; nothing goes to the
// original destination in plaintext.
func TestRequestBeforeDiscoveryAnswersGoesOverMTLS(t *testing.T) {
	m := startMeshCP(t)
	m.dst.Hold()
	client, server, serverIn := discoveredPair(t, m)
	m.dst.SetProfile(serverIn.String(), &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local."})
	_, out, _ := client.Addrs()

	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		body, err := fetch(clientTo(out, true), "http://"+serverIn.String()+"/")
		done <- result{body, err}
	}()
	eventually.True(t, "the client proxy to wait for discovery", func() bool { return m.dst.Held() > 0 })
	// The stream breaks before answering; the request keeps waiting.
	m.dst.Stop()
	m.dst.Release()
	if _, err := m.dst.Start(m.dstAddr, m.dstTLS); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || got.body != "app" {
		t.Fatalf("request sent before discovery answered: %q %v", got.body, got.err)
	}
	if mtls, plain := inboundRequests(t, server); mtls != 1 || plain != 0 {
		t.Fatalf("server saw %d requests over mTLS from the client and %d in plaintext; want 1 and none\n%s", mtls, plain, grepLines(scrape(t, server), "request_total"))
	}
}

// TestLongLivedConnectionMovesToMTLSOnceDiscovered: while the control plane says the
// address is not a service, requests on an HTTP/2 connection go to the original
// destination in plaintext; once it names the service, requests on the same connection
// go over mesh TLS, even though the endpoint is the very address the plaintext
// connection was pooled for.
func TestLongLivedConnectionMovesToMTLSOnceDiscovered(t *testing.T) {
	m := startMeshCP(t)
	client, server, serverIn := discoveredPair(t, m)
	_, out, _ := client.Addrs()
	var conns atomic.Int32
	c := clientTo(out, true)
	c.Transport.(*http.Transport).DialContext = countingDial(out, &conns)
	url := "http://" + serverIn.String() + "/"
	if body, err := fetch(c, url); err != nil || body != "app" {
		t.Fatalf("request to an address that is not a service: %q %v", body, err)
	}
	if mtls, plain := inboundRequests(t, server); mtls != 0 || plain != 1 {
		t.Fatalf("before discovery knows it: %d over mTLS, %d in plaintext; want none and 1", mtls, plain)
	}
	m.dst.SetProfile(serverIn.String(), &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local."})
	eventually.True(t, "requests on the same connection to go over mTLS", func() bool {
		body, err := fetch(c, url)
		mtls, _ := inboundRequests(t, server)
		return err == nil && body == "app" && mtls > 0
	})
	if n := conns.Load(); n != 1 {
		t.Errorf("the client opened %d connections, want 1 long-lived one", n)
	}
}

// countingDial connects every dial to addr, counting the connections in n.
func countingDial(addr netip.AddrPort, n *atomic.Int32) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		n.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr.String())
	}
}

// TestNewConnectionDuringOutageToTargetInUse: an application holds an HTTP/1 keep-alive
// connection to a service address, its requests routed by the service's name, for longer
// than the discovery idle timeout. The control plane then goes away, and the application
// opens a new connection to the same address: the discovery answer is still cached,
// because a connection resolved through it is open, so the new connection's request
// reaches the endpoint over mesh TLS instead of waiting for the control plane and failing.
func TestNewConnectionDuringOutageToTargetInUse(t *testing.T) {
	m := startMeshCP(t)
	client, server, serverIn := discoveredPairWith(t, m,
		map[string]string{config.EnvOutboundDiscoveryIdle: "200ms"})
	m.dst.SetProfile(serverIn.String(), &destination.DestinationProfile{FullyQualifiedName: "web.ns.svc.cluster.local."})
	_, out, _ := client.Addrs()
	port := fmt.Sprint(serverIn.Port())
	url := "http://web.ns.svc.cluster.local:" + port + "/"
	var conns atomic.Int32
	held := clientTo(out, false)
	held.Transport.(*http.Transport).DialContext = countingDial(out, &conns)
	// The first request may race the very first mesh TLS connection on a loaded machine;
	// what this test is about starts once one has gone through.
	eventually.True(t, "a first request through the mesh", func() bool {
		body, err := fetch(held, url)
		return err == nil && body == "app"
	})
	// Past the idle timeout with the connection open and idle: two other services are
	// requested on it (by Host) in turn, each after the one before was dropped as idle, so by the
	// second drop the sweep that found everything the connection used before idle too
	// has finished.
	for _, other := range []string{"other-a", "other-b"} {
		name := other + ".ns.svc.cluster.local:" + port
		m.dst.Set(name, scriptedcp.Endpoint{Addr: serverIn, Identity: serverIdentity, H2: true})
		if body, err := fetchAs(held, url, name); err != nil || body != "app" {
			t.Fatalf("request to %s: %q %v", name, body, err)
		}
		eventually.True(t, name+" to be dropped as idle", func() bool { return m.dst.Streams(name) == 0 })
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("the application opened %d connections, want 1 held open", n)
	}
	m.dst.Stop()
	fresh := clientTo(out, false)
	if body, err := fetch(fresh, url); err != nil || body != "app" {
		t.Fatalf("request on a new connection during the outage: %q %v", body, err)
	}
	if body, err := fetch(held, url); err != nil || body != "app" {
		t.Fatalf("request on the held connection during the outage: %q %v", body, err)
	}
	if mtls, plain := inboundRequests(t, server); mtls != 5 || plain != 0 {
		t.Fatalf("server saw %d requests over mTLS from the client and %d in plaintext; want 5 and none", mtls, plain)
	}
}

// fetchAs is fetch with the request's Host set to host (url's host when empty); the
// client still pools the connection by url.
func fetchAs(c *http.Client, url, host string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d (%s): %s", resp.StatusCode, resp.Header.Get("L5d-Proxy-Error"), b)
	}
	return string(b), nil
}
