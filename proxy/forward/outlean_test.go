package forward

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	pb "github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proxy/balance"
	"github.com/l5d-go/l5d/proxy/h1"
	"github.com/l5d-go/l5d/proxy/h2"
	"github.com/l5d-go/l5d/proxy/metrics"
	"github.com/l5d-go/l5d/proxy/routes"
)

// h2Reply is what scriptedH2Peer answers on a stream: header blocks (interim ones, the
// final one, trailers), each a list of fields ending the stream when its end is set,
// with DATA frames after the final head; reset, when set, resets the stream after the
// DATA frames instead of ending it.
type h2Reply struct {
	heads []h2Block
	data  []string
	// trailers, when set, follow the data and end the stream.
	trailers []hpack.HeaderField
	reset    bool
}

type h2Block struct {
	fields []hpack.HeaderField
	end    bool
}

// scriptedH2Peer is an HTTP/2 server on loopback, written with the Framer, that answers
// each stream with the reply reply returns for its :path: it sends exactly the fields
// and frames scripted, as a peer proxy (or a hostile one) could.
func scriptedH2Peer(t testing.TB, reply func(path string) h2Reply) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveScriptedH2(c, reply)
		}
	}()
	return ln.Addr().String()
}

func serveScriptedH2(c net.Conn, reply func(path string) h2Reply) {
	defer c.Close()
	br := bufio.NewReader(c)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	bw := bufio.NewWriter(c)
	fr := http2.NewFramer(bw, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	block := func(fields []hpack.HeaderField) []byte {
		hbuf.Reset()
		for _, f := range fields {
			enc.WriteField(f)
		}
		return hbuf.Bytes()
	}
	fr.WriteSettings()
	bw.Flush()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			r := reply(f.PseudoValue("path"))
			id := f.StreamID
			for _, b := range r.heads {
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block(b.fields), EndStream: b.end, EndHeaders: true})
			}
			for i, d := range r.data {
				end := i == len(r.data)-1 && r.trailers == nil && !r.reset
				fr.WriteData(id, end, []byte(d))
			}
			switch {
			case r.reset:
				fr.WriteRSTStream(id, http2.ErrCodeInternal)
			case r.trailers != nil:
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block(r.trailers), EndStream: true, EndHeaders: true})
			}
		}
		if bw.Flush() != nil {
			return
		}
	}
}

// relayed is what a relay wrote: the status line, the head's field lines grouped by
// name (their order within a name kept: a header map's order across names is
// random), the body as the client reads it and the trailer lines grouped alike.
func relayed(t testing.TB, out string) string {
	head, rest, ok := strings.Cut(out, "\r\n\r\n")
	if !ok {
		return fmt.Sprintf("no head end in %q", out)
	}
	lines := strings.Split(head, "\r\n")
	group := func(ls []string) {
		slices.SortStableFunc(ls, func(a, b string) int {
			na, _, _ := strings.Cut(a, ":")
			nb, _, _ := strings.Cut(b, ":")
			return strings.Compare(na, nb)
		})
	}
	group(lines[1:])
	if !slices.Contains(lines, "Transfer-Encoding: chunked") {
		return strings.Join(lines, "\n") + "\n\n" + rest
	}
	var body strings.Builder
	for {
		size, after, ok := strings.Cut(rest, "\r\n")
		n, err := strconv.ParseInt(size, 16, 64)
		if !ok || err != nil || int64(len(after)) < n {
			return strings.Join(lines, "\n") + "\n\n" + body.String() + "<cut> " + rest
		}
		if n == 0 {
			var trailer []string
			if section := strings.TrimSuffix(after, "\r\n"); section != "" {
				trailer = strings.Split(strings.TrimSuffix(section, "\r\n"), "\r\n")
			}
			group(trailer)
			return strings.Join(lines, "\n") + "\n\n" + body.String() + "\n--\n" + strings.Join(trailer, "\n")
		}
		body.WriteString(after[:n])
		rest = strings.TrimPrefix(after[n:], "\r\n")
	}
}

// relayResult is what one relay of relayBoth did.
type relayResult struct {
	out    string
	broken bool
	grpc   string
	err    string
}

// streamID is the stream's number in an error, which differs between the two requests.
var streamID = regexp.MustCompile(`stream ID [0-9]+`)

// relayBoth sends a request for path to the peer at addr through tr twice, relays the
// response RoundTripHead gives with relayResponse and the one RoundTripFields gives with
// relayFields, and returns what each wrote (normalized by relayed), whether each broke
// off, and the gRPC status each relay's metrics would see.
func relayBoth(t testing.TB, tr *h2.Transport, addr, method, path string, clientClose bool) (general, lean relayResult) {
	head := method == "HEAD"
	rh := &h2.RequestHead{Method: method, Authority: "web.ns.svc.cluster.local:8080", Path: path,
		Fields: func(enc func(name, value string)) { enc("l5d-orig-proto", "HTTP/1.1") }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var buf bytes.Buffer
	s := &fastConn{cw: h1.NewWriter(&buf)}
	if resp, err := tr.RoundTripHead(ctx, addr, rh); err != nil {
		general.err = streamID.ReplaceAllString(err.Error(), "stream ID n")
	} else {
		general.broken = s.relayResponse(resp, head, clientClose)
		resp.Body.Close()
		s.cw.Flush()
		general.out, general.grpc = relayed(t, buf.String()), grpcStatus(resp)
	}

	buf.Reset()
	s.cw.Reset(&buf)
	if resp, err := tr.RoundTripFields(ctx, addr, rh); err != nil {
		lean.err = streamID.ReplaceAllString(err.Error(), "stream ID n")
	} else {
		lean.broken = s.relayFields(resp, head, clientClose)
		lean.grpc = fieldsGRPCStatus(resp)
		resp.Close()
		s.cw.Flush()
		lean.out = relayed(t, buf.String())
	}
	return general, lean
}

func hf(nv ...string) []hpack.HeaderField {
	var fs []hpack.HeaderField
	for i := 0; i+1 < len(nv); i += 2 {
		fs = append(fs, hpack.HeaderField{Name: nv[i], Value: nv[i+1]})
	}
	return fs
}

// TestLeanOutboundEqualsGeneral: the client proxy's lean relay (RoundTripFields,
// relayFields) writes the HTTP/1.1 response the relay of RoundTripHead's http.Response
// (relayResponse) writes: the same status line, fields under the same names with their
// values in order, the same framing (Content-Length kept or added, chunked when the
// length is unknown, none for HEAD, 204 and 304), body and trailers, interim responses
// skipped, hop-by-hop and connection-specific fields dropped, for a client that keeps its
// connection and one that closes it; a stream reset mid-body breaks both off.
func TestLeanOutboundEqualsGeneral(t *testing.T) {
	many := []string{":status", "200"}
	for i := range 12 {
		many = append(many, "x-field-"+strconv.Itoa(i), strconv.Itoa(i))
	}
	many = append(many, "content-length", "2")
	replies := map[string]h2Reply{
		"/plain": {heads: []h2Block{{fields: hf(":status", "200", "content-type", "text/plain", "set-cookie", "a=1", "set-cookie", "b=2",
			"x-empty", "", "content-length", "5", "www-authenticate", "basic", "x-b3-sampled", "1", "etag", `"x"`)}}, data: []string{"hel", "lo"}},
		"/nolen":        {heads: []h2Block{{fields: hf(":status", "200", "x-a", "1")}}, data: []string{"abc", "de"}},
		"/empty":        {heads: []h2Block{{fields: hf(":status", "200", "x-a", "1")}}, data: []string{""}},
		"/trailers":     {heads: []h2Block{{fields: hf(":status", "200", "trailer", "x-sum, grpc-status")}}, data: []string{"abc"}, trailers: hf("x-sum", "3", "grpc-status", "0", "grpc-message", "")},
		"/grpcfail":     {heads: []h2Block{{fields: hf(":status", "200", "content-type", "application/grpc")}}, data: []string{"\x00\x00\x00\x00\x00"}, trailers: hf("grpc-status", "14", "grpc-status", "0")},
		"/trailersonly": {heads: []h2Block{{fields: hf(":status", "200", "content-type", "application/grpc", "grpc-status", "7"), end: true}}},
		"/early": {heads: []h2Block{{fields: hf(":status", "103", "link", "</s.css>; rel=preload")}, {fields: hf(":status", "100")},
			{fields: hf(":status", "201", "content-length", "2")}}, data: []string{"ok"}},
		"/head":      {heads: []h2Block{{fields: hf(":status", "200", "content-length", "42", "content-type", "text/html"), end: true}}},
		"/headnolen": {heads: []h2Block{{fields: hf(":status", "200", "content-type", "text/html"), end: true}}},
		"/204":       {heads: []h2Block{{fields: hf(":status", "204", "x-a", "1"), end: true}}},
		"/304":       {heads: []h2Block{{fields: hf(":status", "304", "etag", `"x"`, "content-length", "10"), end: true}}},
		"/hop": {heads: []h2Block{{fields: hf(":status", "200", "connection", "x-hop, keep-alive", "keep-alive", "timeout=5", "proxy-connection", "close",
			"te", "trailers", "transfer-encoding", "chunked", "upgrade", "h2c", "l5d-orig-proto", "HTTP/1.1", "x-kept", "1", "content-length", "0"), end: true}}},
		"/badlen":       {heads: []h2Block{{fields: hf(":status", "200", "content-length", "abc")}}, data: []string{"xyz"}},
		"/emptylen":     {heads: []h2Block{{fields: hf(":status", "200", "content-length", "", "content-length", "3")}}, data: []string{"xyz"}},
		"/twolen":       {heads: []h2Block{{fields: hf(":status", "200", "content-length", "3", "content-length", "4")}}, data: []string{"xyz"}},
		"/many":         {heads: []h2Block{{fields: hf(many...)}}, data: []string{"ok"}},
		"/599":          {heads: []h2Block{{fields: hf(":status", "599", "content-length", "0"), end: true}}},
		"/proxyerr":     {heads: []h2Block{{fields: hf(":status", "502", "l5d-proxy-error", "connection refused", "content-type", "text/plain; charset=utf-8", "content-length", "3")}}, data: []string{"no\n"}},
		"/big":          {heads: []h2Block{{fields: hf(":status", "200")}}, data: []string{strings.Repeat("x", 16384), strings.Repeat("y", 16384), strings.Repeat("z", 7232)}},
		"/reset":        {heads: []h2Block{{fields: hf(":status", "200", "content-length", "10")}}, data: []string{"abc"}, reset: true},
		"/resetchunked": {heads: []h2Block{{fields: hf(":status", "200")}}, data: []string{"abc"}, reset: true},
		"/nostatus":     {heads: []h2Block{{fields: hf("x-a", "1"), end: true}}},
		"/badname":      {heads: []h2Block{{fields: hf(":status", "200", "X-Upper", "1"), end: true}}},
	}
	addr := scriptedH2Peer(t, func(path string) h2Reply { return replies[path] })
	tr := &h2.Transport{Connect: TCPConnector(time.Second, 0)}
	t.Cleanup(tr.CloseIdleConnections)
	paths := slices.Sorted(func(yield func(string) bool) {
		for p := range replies {
			if !yield(p) {
				return
			}
		}
	})
	for _, path := range paths {
		for _, method := range []string{"GET", "HEAD"} {
			for _, clientClose := range []bool{false, true} {
				general, lean := relayBoth(t, tr, addr, method, path, clientClose)
				if general != lean {
					t.Errorf("%s %s (client closes: %v): the lean relay gave\n%+v\nthe general one\n%+v", method, path, clientClose, lean, general)
				}
				wantBroken := strings.HasPrefix(path, "/reset") && method == "GET"
				wantErr := path == "/nostatus" || path == "/badname"
				if general.broken != wantBroken || (general.err != "") != wantErr {
					t.Errorf("%s %s: broken %v, error %q", method, path, general.broken, general.err)
				}
			}
		}
	}
	// What the lean relay writes, spelled out for two responses.
	_, lean := relayBoth(t, tr, addr, "GET", "/hop", false)
	if want := "HTTP/1.1 200 OK\nContent-Length: 0\nX-Kept: 1\n\n"; lean.out != want {
		t.Errorf("/hop: the lean relay wrote %q, want %q", lean.out, want)
	}
	_, lean = relayBoth(t, tr, addr, "GET", "/trailers", true)
	if want := "HTTP/1.1 200 OK\nConnection: close\nTransfer-Encoding: chunked\n\nabc\n--\nGrpc-Message: \nGrpc-Status: 0\nX-Sum: 3"; lean.out != want {
		t.Errorf("/trailers: the lean relay wrote %q, want %q", lean.out, want)
	}
}

// FuzzLeanOutboundResponseHead: for any response head a peer proxy sends (a status and
// fields given as "name: value" lines, ending the stream or followed by a body and
// trailers), the lean relay writes the HTTP/1.1 response relayResponse writes from
// RoundTripHead's http.Response, to a HEAD request or another (see
// TestLeanOutboundEqualsGeneral).
func FuzzLeanOutboundResponseHead(f *testing.F) {
	for _, s := range []string{
		"content-type: text/plain\nset-cookie: a=1\nset-cookie: b=2\nx-empty: \ncontent-length: 5",
		"connection: x-hop\nx-hop: 1\nkeep-alive: 5\nte: trailers\ntransfer-encoding: chunked\ntrailer: x-sum",
		"content-length: abc\ncontent-length: 3",
		"content-length: \ncontent-length: 3\nl5d-orig-proto: HTTP/1.1",
		"x--a-: 1\nwww-authenticate: basic\ngrpc-status: 14",
	} {
		f.Add(s, 200, false, false, "x-sum: 1")
		f.Add(s, 304, true, false, "")
		f.Add(s, 204, false, true, "grpc-status: 0")
	}
	var mu sync.Mutex
	var cur h2Reply
	addr := scriptedH2Peer(f, func(string) h2Reply { mu.Lock(); defer mu.Unlock(); return cur })
	tr := &h2.Transport{Connect: TCPConnector(time.Second, 0)}
	f.Cleanup(tr.CloseIdleConnections)
	lines := func(in string) []hpack.HeaderField {
		var fs []hpack.HeaderField
		for line := range strings.SplitSeq(in, "\n") {
			if name, value, ok := strings.Cut(line, ": "); ok {
				fs = append(fs, hpack.HeaderField{Name: name, Value: value})
			}
		}
		return fs
	}
	f.Fuzz(func(t *testing.T, fields string, status int, end, head bool, trailers string) {
		if status < 200 || status > 999 {
			return // an interim response alone leaves both waiting for the final one
		}
		r := h2Reply{heads: []h2Block{{fields: append(hf(":status", strconv.Itoa(status)), lines(fields)...), end: end}}}
		if !end {
			r.data = []string{"body"}
			r.trailers = lines(trailers)
		}
		mu.Lock()
		cur = r
		mu.Unlock()
		method := "GET"
		if head {
			method = "HEAD"
		}
		general, lean := relayBoth(t, tr, addr, method, "/", false)
		if general != lean {
			t.Errorf("the lean relay gave\n%+v\nthe general one\n%+v", lean, general)
		}
	})
}

// TestFastPathH2RoutesClassifyLeanResponses: on the fast path's HTTP/2 sender, a profile
// route's response classes and the default classification see the relayed response's
// status and its grpc-status (in the trailers, or in a head that ends the stream) as the
// general relay's http.Response would show them.
func TestFastPathH2RoutesClassifyLeanResponses(t *testing.T) {
	replies := map[string]h2Reply{
		"/ok":       {heads: []h2Block{{fields: hf(":status", "200", "content-length", "2")}}, data: []string{"ok"}},
		"/limited":  {heads: []h2Block{{fields: hf(":status", "429", "content-length", "0"), end: true}}},
		"/grpcfail": {heads: []h2Block{{fields: hf(":status", "200")}}, data: []string{"x"}, trailers: hf("grpc-status", "14")},
		"/grpcok":   {heads: []h2Block{{fields: hf(":status", "200")}}, data: []string{"x"}, trailers: hf("grpc-status", "0")},
		"/headgrpc": {heads: []h2Block{{fields: hf(":status", "200", "grpc-status", "13"), end: true}}},
	}
	peer := netip.MustParseAddrPort(scriptedH2Peer(t, func(path string) h2Reply { return replies[path] }))
	reg := metrics.New()
	var profile pb.DestinationProfile
	for path := range replies {
		r := &pb.Route{Condition: &pb.RequestMatch{Match: &pb.RequestMatch_Path{Path: &pb.PathMatch{Regex: path}}},
			MetricsLabels: map[string]string{"route": path}}
		r.ResponseClasses = []*pb.ResponseClass{{Condition: &pb.ResponseMatch{Match: &pb.ResponseMatch_Status{
			Status: &pb.HttpStatusRange{Min: 429, Max: 429}}}, IsFailure: true}}
		profile.Routes = append(profile.Routes, r)
	}
	tbl, err := routes.Compile(&profile, routes.Options{Metrics: reg, Labels: metrics.Labels("direction", "outbound")})
	if err != nil {
		t.Fatal(err)
	}
	var current routes.Current
	current.Store(tbl)
	bal := balance.New[*Endpoint](balance.Options{})
	bal.Set([]*balance.Endpoint[*Endpoint]{balance.NewEndpoint(peer, NewEndpoint(peer, true, reg.HTTP(metrics.Labels("direction", "outbound"))))})
	p := startFastProxy(t, peer, func(h *Handler) {
		h.Router = fixedRouter{&Backend{Name: "app.example", Balancer: bal, Routes: &current}}
	})
	c, br := dial(t, p.addr)
	for path := range replies {
		if resp, _ := roundTrip(t, c, br, "GET "+path+" HTTP/1.1\r\nHost: app.example\r\n\r\n"); resp.StatusCode != 200 && resp.StatusCode != 429 {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
	}
	select {
	case b := <-p.handoffs:
		t.Fatalf("handed off %q, want every request on the fast path", b)
	default:
	}
	var sb strings.Builder
	reg.WriteTo(&sb)
	for path, want := range map[string]string{"/ok": "success", "/limited": "failure", "/grpcfail": "failure", "/grpcok": "success", "/headgrpc": "failure"} {
		found := false
		for line := range strings.SplitSeq(sb.String(), "\n") {
			if strings.HasPrefix(line, "route_response_total{") && strings.Contains(line, `route="`+path+`"`) {
				found = true
				if !strings.Contains(line, `classification="`+want+`"} 1`) {
					t.Errorf("%s: %s, want one %s", path, line, want)
				}
			}
		}
		if !found {
			t.Errorf("%s: no route_response_total in\n%s", path, sb.String())
		}
	}
}
