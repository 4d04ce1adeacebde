// Package netconv converts between net/netip values and the proxy API's
// io.linkerd.proxy.net messages (IPAddress, TcpAddress, IPNetwork).
package netconv

import (
	"encoding/binary"
	"net/netip"

	pbnet "github.com/l5d-go/l5d/proto/gen/net"
)

// IPAddress encodes a: IPv4 (including IPv4-mapped IPv6) as fixed32, IPv6 as two fixed64
// halves, most significant first.
func IPAddress(a netip.Addr) *pbnet.IPAddress {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return &pbnet.IPAddress{Ip: &pbnet.IPAddress_Ipv4{Ipv4: binary.BigEndian.Uint32(b[:])}}
	}
	b := a.As16()
	return &pbnet.IPAddress{Ip: &pbnet.IPAddress_Ipv6{Ipv6: &pbnet.IPv6{
		First: binary.BigEndian.Uint64(b[:8]), Last: binary.BigEndian.Uint64(b[8:])}}}
}

// Addr decodes an IPAddress; ok is false when it holds neither family.
func Addr(ip *pbnet.IPAddress) (a netip.Addr, ok bool) {
	switch v := ip.GetIp().(type) {
	case *pbnet.IPAddress_Ipv4:
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v.Ipv4)
		return netip.AddrFrom4(b), true
	case *pbnet.IPAddress_Ipv6:
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], v.Ipv6.GetFirst())
		binary.BigEndian.PutUint64(b[8:], v.Ipv6.GetLast())
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// TCPAddress encodes ap.
func TCPAddress(ap netip.AddrPort) *pbnet.TcpAddress {
	return &pbnet.TcpAddress{Ip: IPAddress(ap.Addr()), Port: uint32(ap.Port())}
}

// AddrPort decodes a TcpAddress; ok is false for a missing address or a port above 65535.
func AddrPort(t *pbnet.TcpAddress) (netip.AddrPort, bool) {
	a, ok := Addr(t.GetIp())
	if !ok || t.GetPort() > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, uint16(t.GetPort())), true
}

// IPNetwork encodes p.
func IPNetwork(p netip.Prefix) *pbnet.IPNetwork {
	return &pbnet.IPNetwork{Ip: IPAddress(p.Addr()), PrefixLen: uint32(p.Bits())}
}

// Prefix decodes an IPNetwork (masked); ok is false when the address or length is invalid.
func Prefix(n *pbnet.IPNetwork) (netip.Prefix, bool) {
	a, ok := Addr(n.GetIp())
	if !ok || n.GetPrefixLen() > uint32(a.BitLen()) {
		return netip.Prefix{}, false
	}
	p, err := a.Prefix(int(n.GetPrefixLen()))
	return p, err == nil
}
