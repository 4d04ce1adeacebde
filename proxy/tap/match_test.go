package tap

import (
	"net/netip"
	"strings"
	"testing"

	pbhttp "github.com/l5d-go/l5d/proto/gen/httptypes"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	pb "github.com/l5d-go/l5d/proto/gen/tap"
	"github.com/l5d-go/l5d/proto/netconv"
)

type M = pb.ObserveRequest_Match

func netmask(ip string, bits uint32, src bool) *M {
	tcp := &pb.ObserveRequest_Match_Tcp{Match: &pb.ObserveRequest_Match_Tcp_Netmask_{Netmask: &pb.ObserveRequest_Match_Tcp_Netmask{
		Ip: netconv.IPAddress(netip.MustParseAddr(ip)), Mask: bits}}}
	if src {
		return &M{Match: &pb.ObserveRequest_Match_Source{Source: tcp}}
	}
	return &M{Match: &pb.ObserveRequest_Match_Destination{Destination: tcp}}
}

func ports(lo, hi uint32) *M {
	return &M{Match: &pb.ObserveRequest_Match_Destination{Destination: &pb.ObserveRequest_Match_Tcp{
		Match: &pb.ObserveRequest_Match_Tcp_Ports{Ports: &pb.ObserveRequest_Match_Tcp_PortRange{Min: lo, Max: hi}}}}}
}

func httpMatch(h *pb.ObserveRequest_Match_Http) *M {
	return &M{Match: &pb.ObserveRequest_Match_Http_{Http: h}}
}

func authority(exact string) *M {
	return httpMatch(&pb.ObserveRequest_Match_Http{Match: &pb.ObserveRequest_Match_Http_Authority{
		Authority: &pb.ObserveRequest_Match_Http_StringMatch{Match: &pb.ObserveRequest_Match_Http_StringMatch_Exact{Exact: exact}}}})
}

func methodIs(m string) *M {
	return httpMatch(&pb.ObserveRequest_Match_Http{Match: &pb.ObserveRequest_Match_Http_Method{Method: method(m)}})
}

func schemeIs(s pbhttp.Scheme_Registered) *M {
	return httpMatch(&pb.ObserveRequest_Match_Http{Match: &pb.ObserveRequest_Match_Http_Scheme{
		Scheme: &pbhttp.Scheme{Type: &pbhttp.Scheme_Registered_{Registered: s}}}})
}

func not(m *M) *M { return &M{Match: &pb.ObserveRequest_Match_Not{Not: m}} }

func TestMatches(t *testing.T) {
	r := &Request{Source: netip.MustParseAddrPort("10.1.2.3:40000"), Destination: netip.MustParseAddrPort("10.9.0.7:8080"),
		Method: "GET", Scheme: "http", Authority: "web.ns.svc.cluster.local:80", Path: "/books/1",
		DestinationLabels: map[string]string{"deployment": "web"}}
	for _, tc := range []struct {
		name  string
		m     *M
		match bool
	}{
		{"nothing", nil, true},
		{"source in net", netmask("10.1.0.0", 16, true), true},
		{"source outside net", netmask("10.2.0.0", 16, true), false},
		{"destination host", netmask("10.9.0.7", 32, false), true},
		{"port range", ports(8000, 8080), true},
		{"single port", ports(8081, 0), false},
		{"authority", authority("web.ns.svc.cluster.local:80"), true},
		{"other authority", authority("web"), false},
		{"method", methodIs("GET"), true},
		{"other method", methodIs("POST"), false},
		{"unregistered method", methodIs("PURGE"), false},
		{"scheme", schemeIs(pbhttp.Scheme_HTTP), true},
		{"https", schemeIs(pbhttp.Scheme_HTTPS), false},
		{"not", not(methodIs("POST")), true},
		{"destination label", &M{Match: &pb.ObserveRequest_Match_DestinationLabel{
			DestinationLabel: &pb.ObserveRequest_Match_Label{Key: "deployment", Value: "web"}}}, true},
		{"route label", &M{Match: &pb.ObserveRequest_Match_RouteLabel{
			RouteLabel: &pb.ObserveRequest_Match_Label{Key: "route", Value: "x"}}}, false},
		{"empty all", &M{Match: &pb.ObserveRequest_Match_All{All: &pb.ObserveRequest_Match_Seq{}}}, true},
		{"empty any", &M{Match: &pb.ObserveRequest_Match_Any{Any: &pb.ObserveRequest_Match_Seq{}}}, false},
		{"any", &M{Match: &pb.ObserveRequest_Match_Any{Any: &pb.ObserveRequest_Match_Seq{
			Matches: []*M{methodIs("POST"), ports(8080, 8080)}}}}, true},
	} {
		f, err := compile(tc.m)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := f(r); got != tc.match {
			t.Errorf("%s: matched %v, want %v", tc.name, got, tc.match)
		}
	}
}

func TestBadMatchesAreNamed(t *testing.T) {
	for _, tc := range []struct {
		m    *M
		want string
	}{
		{netmask("10.0.0.0", 33, true), "source: netmask: mask /33 is longer than the address"},
		{&M{Match: &pb.ObserveRequest_Match_Destination{Destination: &pb.ObserveRequest_Match_Tcp{
			Match: &pb.ObserveRequest_Match_Tcp_Netmask_{Netmask: &pb.ObserveRequest_Match_Tcp_Netmask{Ip: &pbnet.IPAddress{}}}}}},
			"destination: netmask: invalid IP address"},
		{ports(9000, 80), "destination: ports: invalid range 9000-80"},
		{ports(70000, 0), "invalid range 70000-70000"},
		{httpMatch(&pb.ObserveRequest_Match_Http{}), "empty HTTP match"},
		{&M{Match: &pb.ObserveRequest_Match_All{All: &pb.ObserveRequest_Match_Seq{Matches: []*M{
			{Match: &pb.ObserveRequest_Match_Source{Source: &pb.ObserveRequest_Match_Tcp{}}}}}}}, "all: match 0: source: empty TCP match"},
	} {
		_, err := compile(tc.m)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("compile(%v) = %v, want an error containing %q", tc.m, err, tc.want)
		}
	}
}

func TestHubIsInactiveWithoutSessions(t *testing.T) {
	var nilHub *Hub
	if nilHub.Active() {
		t.Error("a nil hub is active")
	}
	h := &Hub{}
	s := &session{match: func(*Request) bool { return true }, events: make(chan *pb.TapEvent, 1), done: make(chan struct{})}
	h.open(s)
	if !h.Active() || h.Sessions() != 1 {
		t.Fatal("hub not active with a session open")
	}
	h.close(s)
	if h.Active() || h.Start(&Request{}, nil) != nil {
		t.Error("hub active after its last session closed")
	}
}
