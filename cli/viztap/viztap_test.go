package viztap

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/l5d-go/l5d/proto/gen/httptypes"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	pbtap "github.com/l5d-go/l5d/proto/gen/tap"
	"github.com/l5d-go/l5d/proto/netconv"
)

func tcp(s string) *pbnet.TcpAddress {
	a := netip.MustParseAddrPort(s)
	return &pbnet.TcpAddress{Ip: netconv.IPAddress(a.Addr()), Port: uint32(a.Port())}
}

func event(dir pbtap.TapEvent_ProxyDirection, h *pbtap.TapEvent_Http) *pbtap.TapEvent {
	return &pbtap.TapEvent{
		Source:          tcp("10.0.0.5:41234"),
		SourceMeta:      &pbtap.TapEvent_EndpointMeta{Labels: map[string]string{"deployment": "web", "namespace": "l5d-demo", "pod": "web-1"}},
		Destination:     tcp("10.0.0.7:8080"),
		DestinationMeta: &pbtap.TapEvent_EndpointMeta{Labels: map[string]string{"deployment": "catalog", "namespace": "l5d-demo", "tls": "true"}},
		ProxyDirection:  dir,
		Event:           &pbtap.TapEvent_Http_{Http: h},
	}
}

var id = &pbtap.TapEvent_Http_StreamId{Base: 0, Stream: 1}

func TestLine(t *testing.T) {
	req := event(pbtap.TapEvent_OUTBOUND, &pbtap.TapEvent_Http{Event: &pbtap.TapEvent_Http_RequestInit_{RequestInit: &pbtap.TapEvent_Http_RequestInit{
		Id: id, Method: &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Registered_{Registered: httptypes.HttpMethod_GET}},
		Authority: "catalog:8080", Path: "/books",
	}}})
	rsp := event(pbtap.TapEvent_OUTBOUND, &pbtap.TapEvent_Http{Event: &pbtap.TapEvent_Http_ResponseInit_{ResponseInit: &pbtap.TapEvent_Http_ResponseInit{
		Id: id, HttpStatus: 200, SinceRequestInit: durationpb.New(1503 * time.Microsecond),
	}}})
	end := event(pbtap.TapEvent_OUTBOUND, &pbtap.TapEvent_Http{Event: &pbtap.TapEvent_Http_ResponseEnd_{ResponseEnd: &pbtap.TapEvent_Http_ResponseEnd{
		Id: id, SinceResponseInit: durationpb.New(41 * time.Microsecond), ResponseBytes: 42,
	}}})
	grpcEnd := event(pbtap.TapEvent_INBOUND, &pbtap.TapEvent_Http{Event: &pbtap.TapEvent_Http_ResponseEnd_{ResponseEnd: &pbtap.TapEvent_Http_ResponseEnd{
		Id: id, ResponseBytes: 7, Eos: &pbtap.Eos{End: &pbtap.Eos_GrpcStatusCode{GrpcStatusCode: 5}},
	}}})
	grpcEnd.SourceMeta.Labels["tls"] = "true"
	for _, tc := range []struct {
		ev       *pbtap.TapEvent
		resource string
		want     string
	}{
		{req, "", "req id=0:1 proxy=out src=10.0.0.5:41234 dst=10.0.0.7:8080 tls=true :method=GET :authority=catalog:8080 :path=/books"},
		{rsp, "", "rsp id=0:1 proxy=out src=10.0.0.5:41234 dst=10.0.0.7:8080 tls=true :status=200 latency=1503µs"},
		{end, "", "end id=0:1 proxy=out src=10.0.0.5:41234 dst=10.0.0.7:8080 tls=true duration=41µs response-length=42B"},
		{grpcEnd, "", "end id=0:1 proxy=in  src=10.0.0.5:41234 dst=10.0.0.7:8080 tls=true grpc-status=NotFound duration=0µs response-length=7B"},
		{req, "deployment", "req id=0:1 proxy=out src=10.0.0.5:41234 dst=10.0.0.7:8080 tls=true src_res=deployment/web src_ns=l5d-demo dst_res=deployment/catalog dst_ns=l5d-demo :method=GET :authority=catalog:8080 :path=/books"},
	} {
		if got := Line(tc.ev, tc.resource); got != tc.want {
			t.Errorf("Line(%s):\n got %s\nwant %s", tc.resource, got, tc.want)
		}
	}
}

func TestPrinterFormats(t *testing.T) {
	ev := event(pbtap.TapEvent_OUTBOUND, &pbtap.TapEvent_Http{Event: &pbtap.TapEvent_Http_RequestInit_{RequestInit: &pbtap.TapEvent_Http_RequestInit{Id: id, Path: "/books"}}})
	var buf bytes.Buffer
	p, err := NewPrinter(&buf, "jsonpath={.http.requestInit.path}", "deployment")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Print(ev); err != nil || buf.String() != "/books\n" {
		t.Errorf("jsonpath: %q, %v; want /books", buf.String(), err)
	}
	buf.Reset()
	p, _ = NewPrinter(&buf, "json", "deployment")
	if err := p.Print(ev); err != nil || !strings.Contains(buf.String(), `"path": "/books"`) {
		t.Errorf("json: %q, %v", buf.String(), err)
	}
	for _, bad := range []string{"yaml", "jsonpath", "jsonpath={.a"} {
		if _, err := NewPrinter(&buf, bad, "deployment"); err == nil {
			t.Errorf("NewPrinter(%q): no error", bad)
		}
	}
}

func TestTop(t *testing.T) {
	var top Top
	add := func(stream uint64, path string, status uint32, lat time.Duration) {
		sid := &pbtap.TapEvent_Http_StreamId{Stream: stream}
		top.Add(event(pbtap.TapEvent_OUTBOUND, &pbtap.TapEvent_Http{Event: &pbtap.TapEvent_Http_RequestInit_{RequestInit: &pbtap.TapEvent_Http_RequestInit{
			Id: sid, Method: &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Registered_{Registered: httptypes.HttpMethod_GET}}, Path: path}}}))
		top.Add(event(pbtap.TapEvent_OUTBOUND, &pbtap.TapEvent_Http{Event: &pbtap.TapEvent_Http_ResponseInit_{ResponseInit: &pbtap.TapEvent_Http_ResponseInit{Id: sid, HttpStatus: status}}}))
		top.Add(event(pbtap.TapEvent_OUTBOUND, &pbtap.TapEvent_Http{Event: &pbtap.TapEvent_Http_ResponseEnd_{ResponseEnd: &pbtap.TapEvent_Http_ResponseEnd{Id: sid, SinceRequestInit: durationpb.New(lat)}}}))
	}
	add(1, "/books", 200, 2*time.Millisecond)
	add(2, "/books", 500, 4*time.Millisecond)
	add(3, "/books", 200, 3*time.Millisecond)
	add(4, "/authors", 200, 300*time.Microsecond)
	var buf bytes.Buffer
	if err := top.Write(&buf, false); err != nil {
		t.Fatal(err)
	}
	want := "Source  Destination    Method  Path      Count  Best   Worst  Last   Success Rate\n" +
		"web-1   10.0.0.7:8080  GET     /books    3      2ms    4ms    3ms    66.67%\n" +
		"web-1   10.0.0.7:8080  GET     /authors  1      300µs  300µs  300µs  100.00%\n"
	if buf.String() != want {
		t.Errorf("top:\n%s\nwant:\n%s", buf.String(), want)
	}
}
