// Package viztap prints tap events as `linkerd viz tap` does: one line per event in
// Linkerd's format (req, rsp and end lines with the proxy direction, the addresses and
// the TLS state), with -o wide the Kubernetes resources of both ends, or each event as
// JSON or through a JSONPath template; and aggregates them into `linkerd viz top`'s table
// (Top).
package viztap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"k8s.io/client-go/util/jsonpath"

	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	pbtap "github.com/l5d-go/l5d/proto/gen/tap"
	"github.com/l5d-go/l5d/proto/netconv"
)

// Output formats.
const (
	Default  = ""
	Wide     = "wide"
	JSON     = "json"
	JSONPath = "jsonpath"
)

// Printer writes events in one format. Create it with NewPrinter.
type Printer struct {
	w        io.Writer
	format   string
	resource string // the tapped type, for -o wide
	path     *jsonpath.JSONPath
}

// NewPrinter returns a printer for output ("", "wide", "json" or
// "jsonpath=TEMPLATE"); resourceType is the tapped resource's type (e.g. "deployment"),
// whose names -o wide prints for both ends.
func NewPrinter(w io.Writer, output, resourceType string) (*Printer, error) {
	p := &Printer{w: w, resource: resourceType}
	name, tmpl, hasTmpl := strings.Cut(output, "=")
	switch {
	case output == Default || output == Wide || output == JSON:
		p.format = output
	case name == JSONPath && hasTmpl:
		p.format = JSONPath
		p.path = jsonpath.New("tap").AllowMissingKeys(true)
		if err := p.path.Parse(tmpl); err != nil {
			return nil, fmt.Errorf("-o jsonpath: template %q: %w", tmpl, err)
		}
	default:
		return nil, fmt.Errorf("output format %q: want wide, json or jsonpath=TEMPLATE (e.g. jsonpath='{.http.requestInit.path}')", output)
	}
	return p, nil
}

// Print writes one event.
func (p *Printer) Print(ev *pbtap.TapEvent) error {
	switch p.format {
	case JSON:
		b, err := protojson.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encoding a tap event: %w", err)
		}
		// protojson varies its whitespace from build to build on purpose; indenting
		// again gives the same text for the same event every time.
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return fmt.Errorf("encoding a tap event: %w", err)
		}
		out.WriteByte('\n')
		_, err = p.w.Write(out.Bytes())
		return err
	case JSONPath:
		b, err := protojson.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encoding a tap event: %w", err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("decoding a tap event: %w", err)
		}
		var buf bytes.Buffer
		if err := p.path.Execute(&buf, v); err != nil {
			return fmt.Errorf("-o jsonpath: %w", err)
		}
		buf.WriteByte('\n')
		_, err = p.w.Write(buf.Bytes())
		return err
	}
	resource := ""
	if p.format == Wide {
		resource = p.resource
	}
	_, err := fmt.Fprintln(p.w, Line(ev, resource))
	return err
}

// Line renders an event as Linkerd's tap does, e.g.
//
//	req id=0:1 proxy=out src=10.0.0.5:41234 dst=10.0.0.7:8080 tls=true :method=GET :authority=catalog:8080 :path=/books
//	rsp id=0:1 proxy=out src=10.0.0.5:41234 dst=10.0.0.7:8080 tls=true :status=200 latency=1503µs
//	end id=0:1 proxy=out src=10.0.0.5:41234 dst=10.0.0.7:8080 tls=true duration=41µs response-length=42B
//
// With resourceType set (-o wide), the resources of both ends follow the flow
// ("src_res=deployment/web src_ns=l5d-demo dst_res=deployment/catalog dst_ns=l5d-demo").
func Line(ev *pbtap.TapEvent, resourceType string) string {
	src := end{"src", ev.GetSource(), ev.GetSourceMeta().GetLabels()}
	dst := end{"dst", ev.GetDestination(), ev.GetDestinationMeta().GetLabels()}
	proxy, tls := "???", ""
	switch ev.GetProxyDirection() {
	case pbtap.TapEvent_INBOUND:
		proxy, tls = "in ", src.labels["tls"] // padded to align with "out"
	case pbtap.TapEvent_OUTBOUND:
		proxy, tls = "out", dst.labels["tls"]
	}
	flow := fmt.Sprintf("proxy=%s %s %s tls=%s", proxy, src.addr(), dst.addr(), tls)
	res := ""
	if resourceType != "" {
		res = src.resource(resourceType) + dst.resource(resourceType)
	}
	id := func(i *pbtap.TapEvent_Http_StreamId) string {
		return fmt.Sprintf("id=%d:%d", i.GetBase(), i.GetStream())
	}
	switch e := ev.GetHttp().GetEvent().(type) {
	case *pbtap.TapEvent_Http_RequestInit_:
		r := e.RequestInit
		return fmt.Sprintf("req %s %s %s:method=%s :authority=%s :path=%s", id(r.GetId()), flow, res, Method(r), r.GetAuthority(), r.GetPath())
	case *pbtap.TapEvent_Http_ResponseInit_:
		r := e.ResponseInit
		return fmt.Sprintf("rsp %s %s %s:status=%d latency=%dµs", id(r.GetId()), flow, res, r.GetHttpStatus(), r.GetSinceRequestInit().AsDuration().Microseconds())
	case *pbtap.TapEvent_Http_ResponseEnd_:
		r := e.ResponseEnd
		tail := fmt.Sprintf("duration=%dµs response-length=%dB", r.GetSinceResponseInit().AsDuration().Microseconds(), r.GetResponseBytes())
		switch eos := r.GetEos().GetEnd().(type) {
		case *pbtap.Eos_GrpcStatusCode:
			tail = fmt.Sprintf("grpc-status=%s %s", codes.Code(eos.GrpcStatusCode), tail)
		case *pbtap.Eos_ResetErrorCode:
			tail = fmt.Sprintf("reset-error=%d %s", eos.ResetErrorCode, tail)
		}
		return fmt.Sprintf("end %s %s %s%s", id(r.GetId()), flow, res, tail)
	}
	return "unknown " + flow
}

// Method is a request's method as sent ("GET", or an unregistered method's name).
func Method(r *pbtap.TapEvent_Http_RequestInit) string {
	if u := r.GetMethod().GetUnregistered(); u != "" {
		return u
	}
	return r.GetMethod().GetRegistered().String()
}

type end struct {
	dir    string
	tcp    *pbnet.TcpAddress
	labels map[string]string
}

func (e end) addr() string {
	a, ok := netconv.AddrPort(e.tcp)
	if !ok {
		return e.dir + "=?"
	}
	return e.dir + "=" + a.String()
}

func (e end) resource(resourceType string) string {
	s := ""
	if name, ok := e.labels[resourceType]; ok {
		s = fmt.Sprintf("%s_res=%s/%s ", e.dir, resourceType, name)
	} else if pod, ok := e.labels["pod"]; ok {
		s = fmt.Sprintf("%s_pod=%s ", e.dir, pod)
	}
	if ns, ok := e.labels["namespace"]; ok {
		s += fmt.Sprintf("%s_ns=%s ", e.dir, ns)
	}
	return s
}
