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

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/test/netns"
)

// podRequest makes a GET from inside p to url with Host host and header fields hdr, and
// returns the status and body (0 and "" when the request failed).
func podRequest(p *netns.Pod, url, host string, hdr map[string]string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return p.Dial(ctx, network, addr) }}}
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestApplicationSeesCallerIdentity: the application behind a meshed pod gets
// l5d-client-id with the identity the identity service issued to the calling pod's
// ServiceAccount, whatever l5d-client-id the caller's application sent; an unmeshed
// caller's forged value never reaches it.
func TestApplicationSeesCallerIdentity(t *testing.T) {
	w := newWorld(t, 24*time.Hour)
	server := w.pod(t, "web", "web", true, nil)
	ln, err := server.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "%q", r.Header.Values("L5d-Client-Id"))
	})}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	authority := w.service(t, "web")
	client := w.pod(t, "client", "client", true, nil)
	plain := w.pod(t, "plain", "plain", false, nil)
	target := "http://" + netip.AddrPortFrom(server.IPv4, 8080).String() + "/"
	forged := map[string]string{"L5d-Client-Id": "admin." + w.appNS + ".serviceaccount.identity." + w.cp.ns + "." + trustDomain}

	want := fmt.Sprintf("%q", []string{"client." + w.appNS + ".serviceaccount.identity." + w.cp.ns + "." + trustDomain})
	eventually.True(t, "the application to see the client's identity", func() bool {
		code, body := podRequest(client, target, authority, forged)
		return code == 200 && body == want
	})
	if code, body := podRequest(plain, target, "", forged); code != 200 || body != "[]" {
		t.Fatalf("unmeshed caller: %d %s, want 200 and no l5d-client-id", code, body)
	}
}

// TestServiceProfileDstOverridesSplitTraffic: a ServiceProfile's dstOverrides, through
// the real destination service, move a meshed client's requests for Service web to
// web-v2 (weight 1 against none), then spread them over both (500m each).
func TestServiceProfileDstOverridesSplitTraffic(t *testing.T) {
	w := newWorld(t, 24*time.Hour)
	web := w.pod(t, "web", "web", true, nil)
	serveApp(t, web)
	v2 := w.pod(t, "web-v2", "web-v2", true, nil)
	serveApp(t, v2)
	authority := w.service(t, "web")
	v2Authority := w.service(t, "web-v2")
	client := w.pod(t, "client", "client", true, nil)
	target := "http://" + netip.AddrPortFrom(web.IPv4, 8080).String() + "/"
	eventually.True(t, "the client to reach web", func() bool {
		code, body := podAnswer(client, target, authority)
		return code == 200 && body == "web"
	})

	profile := func(overrides string) string {
		return fmt.Sprintf(`apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: web.%s.svc.cluster.local}
spec:
  dstOverrides:
%s`, w.appNS, overrides)
	}
	w.c.Apply(t, w.appNS, profile(fmt.Sprintf("  - {authority: %s, weight: 1}\n", v2Authority)))
	eventually.True(t, "the dstOverride to move traffic to web-v2", func() bool {
		code, body := podAnswer(client, target, authority)
		return code == 200 && body == "web-v2"
	})
	for i := range 20 {
		if code, body := podAnswer(client, target, authority); code != 200 || body != "web-v2" {
			t.Fatalf("request %d with every request on web-v2: %d %q", i, code, body)
		}
	}

	w.c.Apply(t, w.appNS, profile(fmt.Sprintf("  - {authority: %s, weight: 500m}\n  - {authority: %s, weight: 500m}\n", authority, v2Authority)))
	eventually.True(t, "the 50/50 split to reach web again", func() bool {
		_, body := podAnswer(client, target, authority)
		return body == "web"
	})
	got := map[string]int{}
	for range 200 {
		code, body := podAnswer(client, target, authority)
		if code != 200 {
			t.Fatalf("a request under the 50/50 split failed: %d", code)
		}
		got[body]++
	}
	// Binomial(200, 0.5): outside 60..140 with probability below 1e-8.
	if got["web"] < 60 || got["web"] > 140 || got["web"]+got["web-v2"] != 200 {
		t.Fatalf("50/50 split gave %v", got)
	}
}
