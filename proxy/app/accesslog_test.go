package app

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/l5d-go/l5d/pkg/eventually"
	"github.com/l5d-go/l5d/proxy/config"
	"github.com/l5d-go/l5d/proxy/internal/scriptedcp"
)

// lockedBuffer collects what a proxy writes to its access log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the complete lines written so far.
func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// loggedPair is meshPair whose server proxy writes its access log in format to the
// returned buffer.
func loggedPair(t *testing.T, m *meshCP, format string) (client, server *Proxy, log *lockedBuffer) {
	t.Helper()
	log = &lockedBuffer{}
	env := m.env(serverIdentity)
	env[config.EnvAccessLog] = format
	server = startProxyWith(t, netip.AddrPort{}, namedApp(t, "app"), env, Options{AccessLog: log})
	client = startProxy(t, unreachable, netip.AddrPort{}, m.env(clientIdentity), nil)
	waitReady(t, server)
	waitReady(t, client)
	serverIn, _, _ := server.Addrs()
	m.dst.Set(svc, scriptedcp.Endpoint{Addr: serverIn, Identity: serverIdentity, H2: true})
	return client, server, log
}

// TestAccessLogJSON: with LINKERD2_PROXY_ACCESS_LOG=json the inbound proxy writes one
// JSON object per request with Linkerd's fields: the meshed caller's identity, the
// request as the server proxy received it (HTTP/2 from the client proxy, so an absolute
// URI), its header fields and the response's status and length.
func TestAccessLogJSON(t *testing.T) {
	m := startMeshCP(t)
	client, _, log := loggedPair(t, m, "json")
	_, out, _ := client.Addrs()
	req, _ := http.NewRequest("GET", "http://"+svc+"/books?id=7", nil)
	req.Header.Set("User-Agent", "booksapp/1")
	req.Header.Set("X-Request-Id", "req-42")
	if resp, body := do(t, clientTo(out, false), req); resp.StatusCode != 200 || body != "app" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	eventually.True(t, "the access log line", func() bool { return len(log.lines()) == 1 })
	var got map[string]any
	if err := json.Unmarshal([]byte(log.lines()[0]), &got); err != nil {
		t.Fatalf("%v: %q", err, log.lines()[0])
	}
	want := map[string]any{
		"client.id": clientIdentity, "method": "GET", "uri": "http://" + svc + "/books?id=7",
		"version": "HTTP/2.0", "host": svc, "user_agent": "booksapp/1", "trace_id": "req-42",
		"status": float64(200), "response_bytes": "3", "request_bytes": "",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	for _, k := range []string{"client.addr", "timestamp", "total_ns", "processing_ns"} {
		if s, _ := got[k].(string); s == "" {
			t.Errorf("%s missing in %v", k, got)
		}
	}
	// The proxy's share of the time excludes the wait for the application.
	total, err1 := strconv.ParseInt(got["total_ns"].(string), 10, 64)
	processing, err2 := strconv.ParseInt(got["processing_ns"].(string), 10, 64)
	if err1 != nil || err2 != nil || processing > total || total <= 0 {
		t.Errorf("processing_ns %v, total_ns %v: want 0 <= processing <= total", got["processing_ns"], got["total_ns"])
	}
}

// TestAccessLogApache: with LINKERD2_PROXY_ACCESS_LOG=apache each request is one line
// in the Common Log Format Linkerd writes, "-" for a client without an identity; HTTP/1
// requests to the inbound proxy (which otherwise take its fast path) are logged too.
func TestAccessLogApache(t *testing.T) {
	m := startMeshCP(t)
	client, server, log := loggedPair(t, m, "apache")
	_, out, _ := client.Addrs()
	serverIn, _, _ := server.Addrs()
	if body, err := fetch(clientTo(out, false), "http://"+svc+"/authors"); err != nil || body != "app" {
		t.Fatalf("meshed: %q %v", body, err)
	}
	plain := clientTo(serverIn, false)
	for range 2 { // the second on the same connection
		if body, err := fetch(plain, "http://"+svc+"/ping"); err != nil || body != "app" {
			t.Fatalf("plaintext: %q %v", body, err)
		}
	}
	eventually.True(t, "three access log lines", func() bool { return len(log.lines()) == 3 })
	ts := `\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z\]`
	patterns := []string{
		`^127\.0\.0\.1:\d+ ` + regexp.QuoteMeta(clientIdentity) + ` - ` + ts + ` "GET http://` + regexp.QuoteMeta(svc) + `/authors HTTP/2\.0" 200$`,
		`^127\.0\.0\.1:\d+ - - ` + ts + ` "GET /ping HTTP/1\.1" 200$`,
		`^127\.0\.0\.1:\d+ - - ` + ts + ` "GET /ping HTTP/1\.1" 200$`,
	}
	for i, line := range log.lines() {
		if !regexp.MustCompile(patterns[i]).MatchString(line) {
			t.Errorf("line %d %q does not match %s", i, line, patterns[i])
		}
	}
	if !strings.Contains(scrape(t, server), "access_log_dropped_total 0") {
		t.Errorf("access_log_dropped_total not exported as 0:\n%s", grepLines(scrape(t, server), "access_log"))
	}
}

// TestAccessLogProtocolSwitch: a request that switches protocols (WebSocket) is logged
// with status 101 as soon as it switches, not when the upgraded connection ends.
func TestAccessLogProtocolSwitch(t *testing.T) {
	log := &lockedBuffer{}
	p := startProxyWith(t, netip.AddrPort{}, upgradeApp(t), map[string]string{config.EnvAccessLog: "apache"}, Options{AccessLog: log})
	in, _, _ := p.Addrs()
	conn := switchProtocols(t, in)
	defer conn.Close()
	eventually.True(t, "the access log line while the upgraded connection is open", func() bool { return len(log.lines()) > 0 })
	if lines := log.lines(); len(lines) != 1 || !strings.HasSuffix(lines[0], `"GET /ws HTTP/1.1" 101`) {
		t.Fatalf("access log: %q, want the request with 101", lines)
	}
}
