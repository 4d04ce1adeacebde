package mesh

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mc "github.com/l5d-go/l5d/pkg/apis/multicluster"
	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/pkg/proxyconf"
	"github.com/l5d-go/l5d/test/netns"
)

// TestMulticlusterGatewayBetweenPods: a client pod calls a Service's mirror, as a service
// mirror makes it (selector-less, labelled as a gateway mirror, its EndpointSlice holding
// the gateway pod's address on the proxy's inbound port and the gateway's identity). The
// real destination service resolves it to the gateway with the Service's name as the
// authority override; the gateway pod's proxy, in gateway mode, forwards the request
// over mesh TLS to the Service's pod, whose application sees the gateway's identity. An
// opaque Service's mirror takes the same way with a transport header naming the Service.
// An HTTPRoute splitting the Service 50/50 between itself and its mirror sends half the
// requests through the gateway. When the gateway's proxy dies, the client's requests fail with a proxy error saying
// why. (One cluster stands for both sides: the mirror names a Service of the same API
// server.)
func TestMulticlusterGatewayBetweenPods(t *testing.T) {
	w := newWorld(t, 24*time.Hour)
	web := w.pod(t, "web", "web", true, nil)
	ln, err := web.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "%s %q", r.Host, r.Header.Values("L5d-Client-Id"))
	})}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	remote := w.service(t, "web")

	gwID := "linkerd-gateway." + w.appNS + ".serviceaccount.identity." + w.cp.ns + "." + trustDomain
	gw := w.podWithEnv(t, "linkerd-gateway", "linkerd-gateway", true, nil,
		[]string{"LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES=svc.cluster.local."})
	cs := w.c.Client()
	labels := map[string]string{mc.LabelMirroredService: "true", mc.LabelClusterName: "east"}
	if _, err := cs.CoreV1().Services(w.appNS).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-east", Labels: labels, Annotations: map[string]string{
			mc.AnnRemoteSvcFQName: "web." + w.appNS + ".svc.cluster.local", mc.AnnRemoteGatewayIdentity: gwID}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sliceLabels := map[string]string{discoveryv1.LabelServiceName: "web-east", mc.LabelMirroredService: "true"}
	ready, port, name := true, int32(4143), "http"
	if _, err := cs.DiscoveryV1().EndpointSlices(w.appNS).Create(t.Context(), &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-east-gateway", Labels: sliceLabels, Annotations: map[string]string{mc.AnnRemoteGatewayIdentity: gwID}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{gw.IPv4.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	client := w.pod(t, "client", "client", true, nil)
	mirror := "web-east." + w.appNS + ".svc.cluster.local:8080"
	target := "http://" + netip.AddrPortFrom(web.IPv4, 8080).String() + "/"
	want := fmt.Sprintf("%s %q", remote, []string{gwID})
	eventually.True(t, "the client to reach web through the gateway", func() bool {
		code, body := podRequest(client, target, mirror, nil)
		return code == 200 && body == want
	})

	// An opaque port (Service db on the same pod, port 9000, opaque): its mirror's
	// connections go to the gateway with a transport header naming db, and on to the pod
	// over the opaque transport.
	dbLn, err := web.Listen("tcp", ":9000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbLn.Close() })
	go func() {
		for {
			c, err := dbLn.Accept()
			if err != nil {
				return
			}
			go func() { io.WriteString(c, "hello\n"); io.Copy(c, c); c.Close() }()
		}
	}()
	opaque := map[string]string{proxyconf.AnnOpaquePorts: "9000"}
	if _, err := cs.CoreV1().Services(w.appNS).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Annotations: opaque},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "tcp", Port: 9000}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dbMirror, err := cs.CoreV1().Services(w.appNS).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db-east", Labels: labels, Annotations: map[string]string{proxyconf.AnnOpaquePorts: "9000",
			mc.AnnRemoteSvcFQName: "db." + w.appNS + ".svc.cluster.local", mc.AnnRemoteGatewayIdentity: gwID}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "tcp", Port: 9000}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tcpName := "tcp"
	if _, err := cs.DiscoveryV1().EndpointSlices(w.appNS).Create(t.Context(), &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "db-east-gateway", Annotations: map[string]string{mc.AnnRemoteGatewayIdentity: gwID},
			Labels: map[string]string{discoveryv1.LabelServiceName: "db-east", mc.LabelMirroredService: "true"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{gw.IPv4.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &tcpName, Port: &port}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dbAddr := net.JoinHostPort(dbMirror.Spec.ClusterIP, "9000")
	eventually.True(t, "an opaque connection to db's mirror to reach db through the gateway", func() bool {
		return greetedAndEchoed(client, dbAddr)
	})

	// An HTTPRoute splitting web between itself and its mirror: about half the requests
	// go through the gateway (the application sees the gateway's identity), the others
	// straight to web (it sees the client's).
	w.c.Apply(t, w.appNS, `apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: web-split}
spec:
  parentRefs: [{group: core, kind: Service, name: web, port: 8080}]
  rules:
    - backendRefs:
        - {name: web, port: 8080, weight: 50}
        - {name: web-east, port: 8080, weight: 50}
`)
	direct := fmt.Sprintf("%s %q", remote, []string{"client." + w.appNS + ".serviceaccount.identity." + w.cp.ns + "." + trustDomain})
	eventually.True(t, "the HTTPRoute to send requests for web through the gateway", func() bool {
		code, body := podRequest(client, target, remote, nil)
		return code == 200 && body == want
	})
	seen := map[string]int{}
	for range 40 {
		code, body := podRequest(client, target, remote, nil)
		if code != 200 || body != want && body != direct {
			t.Fatalf("a request split by the HTTPRoute: %d %q", code, body)
		}
		seen[body]++
	}
	t.Logf("of 40 requests split 50/50, %d went through the gateway and %d straight to web", seen[want], seen[direct])
	if seen[want] == 0 || seen[direct] == 0 {
		t.Fatalf("the split sent %d through the gateway and %d straight to web, want both", seen[want], seen[direct])
	}

	// Without its gateway the mirror fails fast, and the client proxy says why.
	w.proxies["linkerd-gateway"].Kill()
	eventually.True(t, "requests to the mirror to fail with l5d-proxy-error", func() bool {
		code, why := proxyError(client, target, mirror)
		return code >= 500 && why != ""
	})
}

// greetedAndEchoed reports whether a connection from p to addr gets the greeting and one
// echo.
func greetedAndEchoed(p *netns.Pod, addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.Dial(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len("hello\nping\n"))
	if _, err := io.ReadFull(c, buf[:6]); err != nil || string(buf[:6]) != "hello\n" {
		return false
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return false
	}
	_, err = io.ReadFull(c, buf[6:])
	return err == nil && string(buf[6:]) == "ping\n"
}

// proxyError makes a GET from inside p and returns the status and l5d-proxy-error (0
// when the request failed).
func proxyError(p *netns.Pod, url, host string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return p.Dial(ctx, network, addr) }}}
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, ""
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("L5d-Proxy-Error")
}
