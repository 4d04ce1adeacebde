package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
	"github.com/l5d-go/l5d/test/netns"
)

// TestIdentityHeaderRequiredIdentityAndAccessLogBetweenPods runs the proxy binary with
// identities in pods with proxy-init's rules. The server pod's proxy requires identity on
// port 8080 (LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY) and writes a JSON access log
// (LINKERD2_PROXY_ACCESS_LOG). A meshed client's request reaches the server's application
// with l5d-client-id naming the client, not the value its application forged, and is
// logged on the server proxy's stderr with that identity; a pod without a proxy is
// refused on 8080 and served on 8081, where it is logged without an identity.
func TestIdentityHeaderRequiredIdentityAndAccessLogBetweenPods(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	bin := buildProxy(t)
	n := netns.New(t)
	client, server, outsider := n.Pod(t, "client"), n.Pod(t, "server"), n.Pod(t, "outsider")
	env, dst := nodeControlPlane(t, n)

	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q", r.Header.Values("L5d-Client-Id"))
	})}
	for _, port := range []string{":8080", ":8081"} {
		ln, err := server.Listen("tcp", port)
		if err != nil {
			t.Fatal(err)
		}
		go app.Serve(ln)
	}
	t.Cleanup(func() { app.Close() })
	const web = "web.ns.svc.cluster.local:8080"
	dst.Set(web, scriptedcp.Endpoint{Addr: netip.AddrPortFrom(server.IPv4, 8080), Identity: serverIdentity, H2: true})

	serverLog := meshPodLogged(t, server, bin, append(env(serverIdentity),
		config.EnvInboundPortsRequireID+"=8080", config.EnvAccessLog+"=json")...)
	meshPod(t, client, bin, env(clientIdentity)...)

	get := func(c *http.Client, url, host string) (string, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		req.Header.Set("L5d-Client-Id", "admin.ns.serviceaccount.identity.linkerd.cluster.local")
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	want := fmt.Sprintf("%q", []string{clientIdentity})
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for { // until discovery and the server's certificate are in place
		var err error
		body, err = get(podClient(client), "http://"+netip.AddrPortFrom(server.IPv4, 8080).String()+"/books", web)
		if err == nil && body == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the meshed client's request: %q %v, want the application to see l5d-client-id %s", body, err, want)
		}
		time.Sleep(50 * time.Millisecond) // pacing between attempts, not synchronisation
	}

	plain := podClient(outsider)
	if body, err := get(plain, "http://"+netip.AddrPortFrom(server.IPv4, 8080).String()+"/", ""); err == nil {
		t.Errorf("a client without a proxy got %q on the port requiring identity, want the connection closed", body)
	}
	if body, err := get(plain, "http://"+netip.AddrPortFrom(server.IPv4, 8081).String()+"/ping", ""); err != nil || body != "[]" {
		t.Errorf("a client without a proxy on port 8081: %q %v, want the application to see no l5d-client-id", body, err)
	}
	metrics := podGet(t, podClient(server), "http://127.0.0.1:4191/metrics")
	refused := `inbound_tcp_errors_total{target_addr="` + netip.AddrPortFrom(server.IPv4, 8080).String() + `",error="unauthorized"}`
	if !strings.Contains(metrics, refused) {
		t.Errorf("the refused connection is not counted as %s:\n%s", refused, grepLines(metrics, "inbound_tcp_errors"))
	}

	// The access log, on the server proxy's stderr: the meshed request, with the client's
	// identity, then the outsider's on 8081, without one.
	var entries []map[string]any
	eventually.True(t, "two access log lines", func() bool {
		entries = entries[:0]
		for _, l := range serverLog.lines() {
			var e map[string]any
			if json.Unmarshal([]byte(l), &e) == nil && e["uri"] != nil {
				entries = append(entries, e)
			}
		}
		return len(entries) >= 2
	})
	last := entries[len(entries)-2:]
	if e := last[0]; e["client.id"] != clientIdentity || e["uri"] != "http://"+web+"/books" || e["status"] != float64(200) {
		t.Errorf("the meshed request's access log entry: %v", e)
	}
	if e := last[1]; e["client.id"] != "-" || e["uri"] != "/ping" || !strings.HasPrefix(e["client.addr"].(string), outsider.IPv4.String()+":") {
		t.Errorf("the outsider's access log entry: %v", e)
	}
}
