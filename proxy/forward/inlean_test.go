package forward

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"

	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/h1"
	"github.com/l5d-go/l5d/proxy/h2"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// scriptedApp is an HTTP/1.1 application on loopback that records each request head it
// reads (and its body) and answers with the raw response its path names in responses;
// a response ending in "<close>" is followed by closing the connection.
type scriptedApp struct {
	addr      netip.AddrPort
	responses map[string]string
	heads     chan string
}

func newScriptedApp(t *testing.T, responses map[string]string) *scriptedApp {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	a := &scriptedApp{addr: ln.Addr().(*net.TCPAddr).AddrPort(), responses: responses, heads: make(chan string, 100)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go a.serve(c)
		}
	}()
	return a
}

func (a *scriptedApp) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		var head strings.Builder
		length := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "content-length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		a.heads <- head.String() + string(body)
		target := strings.Fields(head.String())[1]
		resp, ok := a.responses[target]
		if !ok {
			resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
		}
		resp, closeAfter := strings.CutSuffix(resp, "<close>")
		if resp == "" { // no response at all
			return
		}
		if _, err := io.WriteString(c, resp); err != nil || closeAfter {
			return
		}
	}
}

// sortedHead is a recorded request head with its field lines sorted: the general handler
// writes them in its header map's order.
func sortedHead(head string) string {
	h, body, _ := strings.Cut(head, "\r\n\r\n")
	lines := strings.Split(h, "\r\n")
	slices.Sort(lines[1:])
	return strings.Join(lines, "\n") + "\n\n" + body
}

// leanProbe is the inbound handler served to the HTTP/2 server, counting the requests
// its lean sender took; general hides ServeFields, so every request takes ServeHTTP.
type leanProbe struct {
	*Handler
	lean atomic.Int32
}

func (p *leanProbe) ServeFields(w http.ResponseWriter, r *http.Request, fields []hpack.HeaderField) bool {
	if p.leanInbound(r, ConnInfoFrom(r.Context()), fields) {
		p.lean.Add(1) // counted before the response can reach the client
	}
	return p.Handler.ServeFields(w, r, fields)
}

type generalOnly struct{ h http.Handler }

func (g generalOnly) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.h.ServeHTTP(w, r) }

// exchangeResult is what a client gets for a request.
type exchangeResult struct {
	Status  int
	Header  http.Header
	Body    string
	Trailer http.Header
	Err     string
}

// TestLeanInboundEqualsGeneral: a meshed HTTP/1 request served by the inbound side's lean
// sender (ServeFields) reaches the application with the head the general handler sends
// (the same fields, in any order), and the client gets the same response, for duplicate
// fields, cookie fields (joined), empty values, spoofed identity fields, request bodies,
// HEAD, 1xx, 204 and 304, chunked responses with trailers, responses read until the
// connection closes, hop-by-hop fields the application names in Connection, framing
// conflicts and applications that close without answering.
func TestLeanInboundEqualsGeneral(t *testing.T) {
	app := newScriptedApp(t, map[string]string{
		"/plain":             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Empty: \r\nContent-Length: 5\r\n\r\nhello",
		"/nolen":             "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil close<close>",
		"/chunked":           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n",
		"/conflict":          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"/gzipchunked":       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"/early":             "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
		"/head":              "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nContent-Type: text/html\r\n\r\n",
		"/headnolen":         "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
		"/204":               "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
		"/304":               "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\nContent-Length: 10\r\n\r\n",
		"/hop":               "HTTP/1.1 200 OK\r\nConnection: X-Hop, keep-alive\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nX-Kept: 1\r\nContent-Length: 0\r\n\r\n",
		"/switch":            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n<close>",
		"/silent":            "<close>",
		"/short":             "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc<close>",
		"/big":               "HTTP/1.1 200 OK\r\nContent-Length: 40000\r\n\r\n" + strings.Repeat("x", 40000),
		"/post":              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/500":               "HTTP/1.1 503 Service Unavailable\r\nGrpc-Status: 14\r\nContent-Length: 0\r\n\r\n",
		"/%7Euser/a%20b?q=1": "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	})
	reg := metrics.New()
	ep := NewEndpoint(app.addr, false, reg.HTTP(metrics.Labels("direction", "inbound")))
	bal := balance.New[*Endpoint](balance.Options{})
	bal.Set([]*balance.Endpoint[*Endpoint]{balance.NewEndpoint(app.addr, ep)})
	h := &Handler{
		Router:  fixedRouter{&Backend{Name: app.addr.String(), Balancer: bal}},
		Clients: NewClients(ClientOptions{Connect: TCPConnector(time.Second, 0)}),
	}
	const id = "web.ns.serviceaccount.identity.linkerd.cluster.local"
	ci := func() *ConnInfo {
		return &ConnInfo{Direction: "inbound", OrigDst: app.addr, TLS: true, ClientID: id}
	}
	probe := &leanProbe{Handler: h}
	lean := serveH2(t, probe, ci)
	general := serveH2(t, generalOnly{h}, ci)
	tr := &h2.Transport{Connect: TCPConnector(time.Second, 0)}
	t.Cleanup(tr.CloseIdleConnections)

	do := func(addr, method, path, body string, fields [][2]string) (exchangeResult, string) {
		var rb io.Reader
		if body != "" {
			rb = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, "http://"+addr+path, rb)
		req.Host = "web.ns.svc.cluster.local:8080"
		for _, f := range fields {
			req.Header.Add(f[0], f[1])
		}
		req.Header.Set(HeaderOrigProto, "HTTP/1.1")
		var res exchangeResult
		resp, err := tr.RoundTrip(req)
		if err != nil {
			res.Err = err.Error()
		} else {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			res = exchangeResult{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Trailer: resp.Trailer}
			if err != nil {
				res.Err = "body: " + err.Error()
			}
		}
		// The app records a head before it answers (or closes), so every head of this
		// request is there once the response is; a request sent again on a fresh
		// connection, after a pooled one turned out closed, is the same head.
		var heads []string
		for {
			select {
			case head := <-app.heads:
				if head = sortedHead(head); !slices.Contains(heads, head) {
					heads = append(heads, head)
				}
				continue
			default:
			}
			return res, strings.Join(heads, "----\n")
		}
	}
	common := [][2]string{
		{"User-Agent", "test/1"}, {"Accept", "*/*"},
		{"X-Dup", "one"}, {"X-Dup", "two"}, {"X-Empty", ""},
		{"Cookie", "a=1"}, {"Cookie", "b=2"},
		{"L5d-Client-Id", "admin.ns.serviceaccount.identity.linkerd.cluster.local"},
		{"L5d-Dst-Override", "admin.ns.svc.cluster.local:80"},
		{"Te", "trailers"},
	}
	cases := []struct{ method, path, body string }{
		{"GET", "/plain", ""}, {"GET", "/nolen", ""}, {"GET", "/chunked", ""},
		{"GET", "/conflict", ""}, {"GET", "/gzipchunked", ""}, {"GET", "/early", ""},
		{"HEAD", "/head", ""}, {"HEAD", "/headnolen", ""}, {"GET", "/204", ""}, {"GET", "/304", ""},
		{"GET", "/hop", ""}, {"GET", "/switch", ""}, {"GET", "/silent", ""}, {"GET", "/short", ""},
		{"GET", "/big", ""}, {"POST", "/post", "a small body"}, {"POST", "/post", ""},
		{"DELETE", "/post", ""}, {"GET", "/500", ""}, {"GET", "/%7Euser/a%20b?q=1", ""},
	}
	for _, c := range cases {
		want, wantHead := do(general, c.method, c.path, c.body, common)
		before := probe.lean.Load()
		got, gotHead := do(lean, c.method, c.path, c.body, common)
		if n := probe.lean.Load() - before; n != 1 {
			t.Errorf("%s %s: the lean sender served %d requests, want 1", c.method, c.path, n)
		}
		if gotHead != wantHead {
			t.Errorf("%s %s: the app got\n%s\nfrom the lean sender, and from the general handler\n%s", c.method, c.path, gotHead, wantHead)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s: the client got\n%+v\nfrom the lean sender, and from the general handler\n%+v", c.method, c.path, got, want)
		}
		if c.path == "/headnolen" && got.Header.Get("Content-Length") != "" {
			t.Errorf("HEAD without Content-Length: the client was told %q", got.Header.Get("Content-Length"))
		}
		if c.path == "/plain" {
			for _, line := range []string{"Cookie: a=1; b=2", "L5d-Client-Id: " + id, "X-Dup: one", "X-Dup: two", "X-Empty: ", "Te: trailers"} {
				if !strings.Contains(gotHead, "\n"+line+"\n") {
					t.Errorf("the app's head lacks %q:\n%s", line, gotHead)
				}
			}
			for _, bad := range []string{"admin.ns", "L5d-Orig-Proto"} {
				if strings.Contains(gotHead, bad) {
					t.Errorf("the app's head has %q:\n%s", bad, gotHead)
				}
			}
		}
	}
	// An application that is not listening: both answer 502 saying why.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	downBal := balance.New[*Endpoint](balance.Options{})
	downBal.Set([]*balance.Endpoint[*Endpoint]{balance.NewEndpoint(gone, NewEndpoint(gone, false, reg.HTTP(metrics.Labels("direction", "inbound"))))})
	down := &Handler{Router: fixedRouter{&Backend{Name: gone.String(), Balancer: downBal}}, Clients: h.Clients}
	want, _ := do(serveH2(t, generalOnly{down}, ci), "GET", "/plain", "", nil)
	got, _ := do(serveH2(t, down, ci), "GET", "/plain", "", nil)
	if want.Status != http.StatusBadGateway || want.Header.Get(HeaderProxyError) == "" || !reflect.DeepEqual(got, want) {
		t.Errorf("the app down: the client got %+v from the lean sender, %+v from the general handler", got, want)
	}
}

// serveH2 serves HTTP/2 connections with handler on a loopback listener, each with the
// ConnInfo ci gives, and returns its address.
func serveH2(t testing.TB, handler http.Handler, ci func() *ConnInfo) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv := &h2.Server{Handler: handler}
			go srv.ServeConn(WithConnInfo(ctx, ci()), c)
		}
	}()
	return ln.Addr().String()
}

// FuzzLeanInboundHead: for any request fields an HTTP/2 peer can send (as the h2 server
// accepts them: lower-case token names, valid values, no connection-specific field), the
// head the lean sender writes (writeFieldsHead) and the one the general handler writes
// from the request's header map (RequestHeader, setClientID, removeHopHeaders,
// writeLeanRequest) give the application the same header fields. The input is the fields
// as "name: value" lines.
func FuzzLeanInboundHead(f *testing.F) {
	for _, s := range []string{
		"user-agent: curl\naccept: */*",
		"cookie: a=1\nx: y\ncookie: b=2\ncookie: ",
		"x-dup: 1\nx-dup: 2\nx-empty: ",
		"l5d-client-id: admin\nl5d-dst-override: a:80\nl5d-orig-proto: HTTP/1.1",
		"te: trailers\nhost: other\ncontent-length: 5\ntrailer: x-a",
		"x-b3-sampled: 1\nwww-authenticate: basic\nx--a-: 1",
	} {
		f.Add(s, "web.ns.serviceaccount.identity.linkerd.cluster.local")
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, in, clientID string) {
		var fields []hpack.HeaderField
		for line := range strings.SplitSeq(in, "\n") {
			name, value, ok := strings.Cut(line, ": ")
			if !ok || !validH2Field(name, value) {
				continue
			}
			fields = append(fields, hpack.HeaderField{Name: name, Value: value})
		}
		if clientID != "" && !httpguts.ValidHeaderFieldValue(clientID) {
			return
		}
		var lean bytes.Buffer
		w := h1.NewWriter(&lean)
		writeFieldsHead(w, "GET", "/p", "app", fields, clientID, false, 0)
		w.Flush()

		header := h2.RequestHeader(fields)
		(&ConnInfo{ClientID: clientID}).setClientID(header)
		delete(header, HeaderOrigProto)
		removeHopHeaders(header)
		u, _ := url.ParseRequestURI("/p")
		var general bytes.Buffer
		w = h1.NewWriter(&general)
		writeLeanRequest(w, &http.Request{Method: "GET", URL: u, Host: "app", Header: header}, "app", "/p", false, false)
		w.Flush()

		leanHead, generalHead := lean.String(), general.String()
		a, err := http.ReadRequest(bufio.NewReader(&lean))
		if err != nil {
			t.Fatalf("the lean head does not parse: %v\n%s", err, lean.String())
		}
		b, err := http.ReadRequest(bufio.NewReader(&general))
		if err != nil {
			t.Fatalf("the general head does not parse: %v\n%s", err, general.String())
		}
		if !reflect.DeepEqual(a.Header, b.Header) || a.Host != b.Host || a.RequestURI != b.RequestURI {
			t.Errorf("the lean head\n%s\nis not the general one\n%s", leanHead, generalHead)
		}
	})
}

// validH2Field reports whether the h2 server accepts a request field with this name and
// value (see h2's headerReader and connectionSpecific).
func validH2Field(name, value string) bool {
	if name == "" || !httpguts.ValidHeaderFieldValue(value) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 0x80 || !httpguts.IsTokenRune(rune(c)) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return false
	case "te":
		return value == "trailers"
	}
	return true
}

// FuzzLeanInboundResponseHead: for any response head an application sends, to a HEAD
// request or another, the fields the lean sender relays over HTTP/2 (h2Head) are those
// the general handler relays (leanResponseOf, copyResponse's rules, the HTTP/2 server's
// encoding of the header map): the same values for each name, in the same order.
func FuzzLeanInboundResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Empty: \r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: X-Hop, keep-alive\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nTe: trailers\r\nHost: h\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nGrpc-Status: 14\r\nGrpc-Status: 0\r\n\r\n",
		"HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\n",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, head bool) {
		uc := &upstreamConn{r: h1.NewReader(strings.NewReader(raw))}
		if readFinalHead(uc, false) != nil {
			return
		}
		rh := &uc.head
		lean := http.Header{}
		var rf h2Head
		length, grpcFailure := rf.set(rh, head)
		rf.EncodeFields(func(name, value string) { lean[name] = append(lean[name], value) })

		resp := leanResponseOf(uc, head)
		removeHopHeaders(resp.Header)
		delete(resp.Header, "Te")
		if resp.ContentLength >= 0 && len(resp.Header["Content-Length"]) == 0 && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified {
			resp.Header.Set("Content-Length", itoa(resp.ContentLength))
		}
		general := http.Header{}
		for k, vv := range resp.Header {
			if k == "Host" || k == "Trailer" {
				continue // never sent in an HTTP/2 head (see h2's writeHeaderFields)
			}
			general[strings.ToLower(k)] = vv
		}
		if !reflect.DeepEqual(lean, general) {
			t.Errorf("the lean sender relays %v, the general handler %v", lean, general)
		}
		if length != resp.ContentLength {
			t.Errorf("the lean sender's length %d, the general handler's %d", length, resp.ContentLength)
		}
		if g := grpcStatus(resp); grpcFailure != (g != "" && g != "0") {
			t.Errorf("gRPC failure %v, the general handler's grpc-status %q", grpcFailure, g)
		}
	})
}
