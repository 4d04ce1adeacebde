package tap

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	pb "github.com/l5d-go/l5d/proto/gen/tap"
	"github.com/l5d-go/l5d/proto/netconv"
)

// Request is what a tap match sees of one request at its start.
type Request struct {
	// Start is when the request arrived (now when zero).
	Start time.Time
	// Inbound is set on the inbound side, unset on the outbound side.
	Inbound bool
	// Source is the client's address; Destination the address it connected to.
	Source, Destination netip.AddrPort
	// Method, Scheme ("http" or "https"), Authority and Path are the request's.
	Method, Scheme, Authority, Path string
	// SourceLabels and DestinationLabels describe the peers (tls, client_id, ...).
	SourceLabels, DestinationLabels map[string]string
}

// matcher decides whether a request is tapped.
type matcher func(*Request) bool

// compile turns a Match into a matcher; a nil Match matches everything. An expression the
// proxy cannot evaluate is an error naming it.
func compile(m *pb.ObserveRequest_Match) (matcher, error) {
	if m == nil || m.GetMatch() == nil {
		return func(*Request) bool { return true }, nil
	}
	switch x := m.GetMatch().(type) {
	case *pb.ObserveRequest_Match_All:
		ms, err := compileSeq(x.All)
		if err != nil {
			return nil, fmt.Errorf("all: %w", err)
		}
		return func(r *Request) bool {
			for _, f := range ms {
				if !f(r) {
					return false
				}
			}
			return true
		}, nil
	case *pb.ObserveRequest_Match_Any:
		ms, err := compileSeq(x.Any)
		if err != nil {
			return nil, fmt.Errorf("any: %w", err)
		}
		return func(r *Request) bool {
			for _, f := range ms {
				if f(r) {
					return true
				}
			}
			return false
		}, nil
	case *pb.ObserveRequest_Match_Not:
		f, err := compile(x.Not)
		if err != nil {
			return nil, fmt.Errorf("not: %w", err)
		}
		return func(r *Request) bool { return !f(r) }, nil
	case *pb.ObserveRequest_Match_Source:
		f, err := compileTCP(x.Source)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		return func(r *Request) bool { return f(r.Source) }, nil
	case *pb.ObserveRequest_Match_Destination:
		f, err := compileTCP(x.Destination)
		if err != nil {
			return nil, fmt.Errorf("destination: %w", err)
		}
		return func(r *Request) bool { return f(r.Destination) }, nil
	case *pb.ObserveRequest_Match_DestinationLabel:
		k, v := x.DestinationLabel.GetKey(), x.DestinationLabel.GetValue()
		return func(r *Request) bool { got, ok := r.DestinationLabels[k]; return ok && got == v }, nil
	case *pb.ObserveRequest_Match_RouteLabel:
		// The proxy tags no request with route labels yet, so none matches.
		return func(*Request) bool { return false }, nil
	case *pb.ObserveRequest_Match_Http_:
		return compileHTTP(x.Http)
	}
	return nil, fmt.Errorf("unknown match %T", m.GetMatch())
}

func compileSeq(s *pb.ObserveRequest_Match_Seq) ([]matcher, error) {
	var ms []matcher
	for i, m := range s.GetMatches() {
		f, err := compile(m)
		if err != nil {
			return nil, fmt.Errorf("match %d: %w", i, err)
		}
		ms = append(ms, f)
	}
	return ms, nil
}

func compileTCP(t *pb.ObserveRequest_Match_Tcp) (func(netip.AddrPort) bool, error) {
	switch x := t.GetMatch().(type) {
	case *pb.ObserveRequest_Match_Tcp_Netmask_:
		ip, ok := netconv.Addr(x.Netmask.GetIp())
		if !ok {
			return nil, fmt.Errorf("netmask: invalid IP address")
		}
		bits := int(x.Netmask.GetMask())
		if bits > ip.BitLen() {
			return nil, fmt.Errorf("netmask: mask /%d is longer than the address", bits)
		}
		p, err := ip.Prefix(bits)
		if err != nil {
			return nil, fmt.Errorf("netmask: %w", err)
		}
		return func(a netip.AddrPort) bool { return p.Contains(a.Addr().Unmap()) }, nil
	case *pb.ObserveRequest_Match_Tcp_Ports:
		lo, hi := x.Ports.GetMin(), x.Ports.GetMax()
		if hi == 0 {
			hi = lo
		}
		if lo > 65535 || hi > 65535 || lo > hi {
			return nil, fmt.Errorf("ports: invalid range %d-%d", lo, hi)
		}
		return func(a netip.AddrPort) bool { p := uint32(a.Port()); return p >= lo && p <= hi }, nil
	}
	return nil, fmt.Errorf("empty TCP match")
}

func compileHTTP(h *pb.ObserveRequest_Match_Http) (matcher, error) {
	switch x := h.GetMatch().(type) {
	case *pb.ObserveRequest_Match_Http_Scheme:
		want := strings.ToLower(schemeName(x.Scheme))
		return func(r *Request) bool { return strings.EqualFold(r.Scheme, want) }, nil
	case *pb.ObserveRequest_Match_Http_Method:
		want := methodName(x.Method)
		return func(r *Request) bool { return r.Method == want }, nil
	case *pb.ObserveRequest_Match_Http_Authority:
		f, err := compileString(x.Authority)
		if err != nil {
			return nil, fmt.Errorf("authority: %w", err)
		}
		return func(r *Request) bool { return f(r.Authority) }, nil
	case *pb.ObserveRequest_Match_Http_Path:
		f, err := compileString(x.Path)
		if err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		return func(r *Request) bool { return f(r.Path) }, nil
	}
	return nil, fmt.Errorf("empty HTTP match")
}

func compileString(s *pb.ObserveRequest_Match_Http_StringMatch) (func(string) bool, error) {
	switch x := s.GetMatch().(type) {
	case *pb.ObserveRequest_Match_Http_StringMatch_Exact:
		return func(v string) bool { return v == x.Exact }, nil
	case *pb.ObserveRequest_Match_Http_StringMatch_Prefix:
		return func(v string) bool { return strings.HasPrefix(v, x.Prefix) }, nil
	}
	return nil, fmt.Errorf("empty string match")
}
