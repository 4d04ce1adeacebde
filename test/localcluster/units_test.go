package localcluster

import (
	"bufio"
	"context"
	"errors"
	"io"
	discoveryv1 "k8s.io/api/discovery/v1"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

func TestImageName(t *testing.T) {
	for ref, want := range map[string]string{
		"ghcr.io/l5d-go/proxy:v1.2.3":                 "proxy",
		"ghcr.io/l5d-go/proxy-init:dev@sha256:abcdef": "proxy-init",
		"localhost:5000/identity":                     "identity",
		"destination":                                 "destination",
		"policy:latest":                               "policy",
		"/usr/lib/linkerd/linkerd-await":              "linkerd-await",
		"docker.io/library/demo-web:1":                "demo-web",
	} {
		got, err := ImageName(ref)
		if err != nil || got != want {
			t.Errorf("ImageName(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	for _, bad := range []string{"", "  ", "registry.io/", ":tag", "@sha256:00", "a/..", `x\y`} {
		if got, err := ImageName(bad); err == nil {
			t.Errorf("ImageName(%q) = %q, want an error", bad, got)
		} else if !strings.Contains(err.Error(), "image") {
			t.Errorf("ImageName(%q) error %q does not say what is wrong", bad, err)
		}
	}
}

func FuzzImageName(f *testing.F) {
	for _, s := range []string{"ghcr.io/l5d-go/proxy:v1", "a@b", "/x/y/", "host:1/a:b@c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		name, err := ImageName(ref)
		if err != nil {
			return
		}
		if name == "" || strings.ContainsAny(name, "/:@\x00") || name == "." || name == ".." {
			t.Fatalf("ImageName(%q) = %q: not a plain file name", ref, name)
		}
	})
}

func TestImagesResolvesToFirstDirWithExecutable(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	write := func(dir, name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/true\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "proxy", 0o644) // not executable: skipped
	write(b, "proxy", 0o755)
	write(a, "injector", 0o755)
	write(b, "injector", 0o755)
	resolve := Images(a, b)
	if got, err := resolve("ghcr.io/l5d-go/proxy:v1"); err != nil || got != filepath.Join(b, "proxy") {
		t.Errorf("proxy resolved to %q, %v; want %s", got, err, filepath.Join(b, "proxy"))
	}
	if got, err := resolve("ghcr.io/l5d-go/injector:v1"); err != nil || got != filepath.Join(a, "injector") {
		t.Errorf("injector resolved to %q, %v; want %s", got, err, filepath.Join(a, "injector"))
	}
	_, err := resolve("ghcr.io/l5d-go/missing:v1")
	if !errors.Is(err, ErrNoImage) || !strings.Contains(err.Error(), `"missing"`) || !strings.Contains(err.Error(), a) {
		t.Errorf("missing image: error %v, want ErrNoImage naming the program and the directories", err)
	}
}

func svc(ns, name string, ips ...string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if len(ips) > 0 {
		s.Spec.ClusterIP = ips[0]
		s.Spec.ClusterIPs = ips
	}
	return s
}

func TestRenderHosts(t *testing.T) {
	got := string(renderHosts([]*corev1.Service{
		svc("b", "web", "10.96.0.20"),
		svc("a", "api", "10.96.0.10", "fd00:96::10"),
		svc("a", "headless", "None"),
		svc("a", "empty", "None"),
	}, []*discoveryv1.EndpointSlice{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "headless-x", Labels: map[string]string{discoveryv1.LabelServiceName: "headless"}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.0.7"}},
			{Addresses: []string{"10.244.0.8"}, Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(false)}},
			{Addresses: []string{"10.244.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(true)}},
		},
	}}, "cluster.local"))
	want := hostsHeader +
		"10.96.0.10\tapi.a.svc.cluster.local\tapi.a.svc\tapi.a\n" +
		"fd00:96::10\tapi.a.svc.cluster.local\tapi.a.svc\tapi.a\n" +
		"10.244.0.7\theadless.a.svc.cluster.local\theadless.a.svc\theadless.a\n" +
		"10.244.0.9\theadless.a.svc.cluster.local\theadless.a.svc\theadless.a\n" +
		"10.96.0.20\tweb.b.svc.cluster.local\tweb.b.svc\tweb.b\n"
	if got != want {
		t.Errorf("renderHosts:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteInPlaceKeepsTheInode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := writeInPlace(path, []byte("a long first version\n")); err != nil {
		t.Fatal(err)
	}
	// An open reader stands for a bind mount: it must see the new content.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeInPlace(path, []byte("short\n")); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil || string(b) != "short\n" {
		t.Errorf("the already open file reads %q, %v; want the new content", b, err)
	}
}

func TestParseServiceHost(t *testing.T) {
	for host, want := range map[string]serviceHost{
		"web.emojivoto":                    {"web", "emojivoto"},
		"web.emojivoto.svc":                {"web", "emojivoto"},
		"web.emojivoto.svc.cluster.local":  {"web", "emojivoto"},
		"Web.Emojivoto.svc.cluster.local.": {"web", "emojivoto"},
	} {
		got, err := parseServiceHost(host, "cluster.local")
		if err != nil || got != want {
			t.Errorf("parseServiceHost(%q) = %v, %v; want %v", host, got, err, want)
		}
	}
	for _, bad := range []string{"", "web", "a.b.c", "-a.b", "a_b.c", "web.ns.svc.other.domain", ".ns"} {
		if _, err := parseServiceHost(bad, "cluster.local"); err == nil {
			t.Errorf("parseServiceHost(%q) accepted", bad)
		}
	}
}

func FuzzParseServiceHost(f *testing.F) {
	for _, s := range []string{"web.ns.svc.cluster.local", "a.b", "x", "..", "a.b.svc."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		sh, err := parseServiceHost(host, "cluster.local")
		if err != nil {
			return
		}
		if !isDNSLabel(sh.name) || !isDNSLabel(sh.namespace) {
			t.Fatalf("parseServiceHost(%q) = %+v: not DNS labels", host, sh)
		}
	})
}

// startProxy runs a connectProxy on a loopback listener whose resolver knows the given
// Services and whose dials go to loopback.
func startProxy(t *testing.T, svcs ...*corev1.Service) string {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, s := range svcs {
		if err := idx.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	r := &resolver{services: corelisters.NewServiceLister(idx)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newConnectProxy(ln, r.resolve, func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { p.Close() })
	return ln.Addr().String()
}

// connectVia sends head to the proxy and returns the status line and the connection.
func connectVia(t *testing.T, proxy, head string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the proxy's answer to %q: %v", head, err)
	}
	return resp, c, br
}

func TestConnectProxyTunnelsToIPsAndServiceNames(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	_, port, _ := net.SplitHostPort(backend.Addr().String())
	proxy := startProxy(t, svc("ns", "echo", "127.0.0.1"))
	for _, target := range []string{"127.0.0.1:" + port, "echo.ns.svc:" + port, "echo.ns.svc.cluster.local:" + port} {
		resp, c, br := connectVia(t, proxy, "CONNECT "+target+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT %s: %s", target, resp.Status)
		}
		if br.Buffered() != 0 {
			t.Fatalf("CONNECT %s: %d bytes after the response head; the API server refuses that", target, br.Buffered())
		}
		io.WriteString(c, "ping\n")
		line, err := br.ReadString('\n')
		if err != nil || line != "ping\n" {
			t.Fatalf("CONNECT %s: echoed %q, %v", target, line, err)
		}
	}
}

func TestConnectProxyRejectsBadRequests(t *testing.T) {
	proxy := startProxy(t, svc("ns", "headless", "None"))
	for _, tc := range []struct {
		head string
		code int
		says string
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusMethodNotAllowed, "only CONNECT"},
		{"garbage\r\n\r\n", http.StatusBadRequest, "malformed"},
		{"CONNECT nosuch.ns.svc:443 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadGateway, "no Service ns/nosuch"},
		{"CONNECT headless.ns.svc:443 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadGateway, "no cluster IP"},
		{"CONNECT a.b.c.d.e:443 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadGateway, "neither an IP address"},
		{"CONNECT 10.0.0.1:0 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadGateway, "port"},
		{"CONNECT 10.0.0.1 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadGateway, "missing port"},
	} {
		resp, _, _ := connectVia(t, proxy, tc.head)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.says) {
			t.Errorf("%q: %s %q; want %d saying %q", tc.head, resp.Status, body, tc.code, tc.says)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
