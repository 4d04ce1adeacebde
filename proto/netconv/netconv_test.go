package netconv

import (
	"net/netip"
	"testing"

	pbnet "github.com/l5d-go/l5d/proto/gen/net"
)

func TestRoundTrips(t *testing.T) {
	for _, s := range []string{"10.244.0.3:8080", "[fd00:244::3]:4143", "[::ffff:10.0.0.1]:80"} {
		ap := netip.MustParseAddrPort(s)
		got, ok := AddrPort(TCPAddress(ap))
		if want := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()); !ok || got != want {
			t.Errorf("%s: %v %v", s, got, ok)
		}
	}
	if v := IPAddress(netip.MustParseAddr("10.1.2.3")).GetIpv4(); v != 0x0a010203 {
		t.Errorf("ipv4 encoding %#x", v)
	}
	for _, s := range []string{"10.0.0.0/8", "0.0.0.0/0", "fd00::/64"} {
		p := netip.MustParsePrefix(s)
		if got, ok := Prefix(IPNetwork(p)); !ok || got != p {
			t.Errorf("%s: %v %v", s, got, ok)
		}
	}
	if _, ok := Prefix(&pbnet.IPNetwork{Ip: IPAddress(netip.MustParseAddr("10.0.0.0")), PrefixLen: 33}); ok {
		t.Error("a /33 IPv4 network decoded")
	}
	if _, ok := AddrPort(&pbnet.TcpAddress{}); ok {
		t.Error("an empty address decoded")
	}
}
