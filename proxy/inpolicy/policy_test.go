package inpolicy

import (
	"net/netip"
	"testing"

	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
)

func v4net(s string) *pbnet.IPNetwork {
	p := netip.MustParsePrefix(s)
	b := p.Addr().As4()
	return &pbnet.IPNetwork{Ip: &pbnet.IPAddress{Ip: &pbnet.IPAddress_Ipv4{Ipv4: uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])}}, PrefixLen: uint32(p.Bits())}
}

func TestDefaults(t *testing.T) {
	cluster := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	inside, outside := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		name                             string
		inPlain, outPlain, inTLS, outTLS bool
	}{
		{"all-unauthenticated", true, true, true, true},
		{"cluster-unauthenticated", true, false, true, false},
		{"all-authenticated", false, false, true, true},
		{"cluster-authenticated", false, false, true, false},
		{"deny", false, false, false, false},
		{"audit", false, false, false, false}, // refused by the policy; Port.Audit lets them through
	} {
		p := Default(tc.name, cluster)
		for _, c := range []struct {
			addr netip.Addr
			id   string
			want bool
		}{{inside, "", tc.inPlain}, {outside, "", tc.outPlain}, {inside, "a.b.serviceaccount.identity.linkerd.cluster.local", tc.inTLS}, {outside, "x", tc.outTLS}} {
			if _, ok := p.Allow(c.addr, c.id); ok != c.want {
				t.Errorf("%s: %s id=%q allowed=%v, want %v", tc.name, c.addr, c.id, ok, c.want)
			}
		}
	}
}

func TestFromProtoIdentitiesAndNetworks(t *testing.T) {
	s := &pb.Server{Labels: map[string]string{"name": "web", "kind": "server"}, Authorizations: []*pb.Authz{{
		Labels:   map[string]string{"name": "web-authz"},
		Networks: []*pb.Network{{Net: v4net("10.0.0.0/8"), Except: []*pbnet.IPNetwork{v4net("10.9.0.0/16")}}},
		Authentication: &pb.Authn{Permit: &pb.Authn_MeshTLS{MeshTLS: &pb.Authn_PermitMeshTLS{Clients: &pb.Authn_PermitMeshTLS_Identities{
			Identities: &pb.Authn_PermitMeshTLS_PermitClientIdentities{
				Identities: []*pb.Identity{{Name: "client.ns.serviceaccount.identity.linkerd.cluster.local"}},
				Suffixes:   []*pb.IdentitySuffix{{Parts: []string{"other", "serviceaccount", "identity", "linkerd", "cluster", "local"}}},
			}}}}},
	}}}
	p, err := FromProto(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		addr, id string
		want     bool
	}{
		{"10.1.0.1", "client.ns.serviceaccount.identity.linkerd.cluster.local", true},
		{"10.1.0.1", "any.other.serviceaccount.identity.linkerd.cluster.local", true},
		{"10.1.0.1", "evil.ns.serviceaccount.identity.linkerd.cluster.local", false},
		{"10.1.0.1", "", false},
		{"10.9.0.1", "client.ns.serviceaccount.identity.linkerd.cluster.local", false},
		{"192.0.2.1", "client.ns.serviceaccount.identity.linkerd.cluster.local", false},
	} {
		a, ok := p.Allow(netip.MustParseAddr(c.addr), c.id)
		if ok != c.want || (ok && a.Name != "web-authz") {
			t.Errorf("%s %q: allowed=%v (%v), want %v", c.addr, c.id, ok, a, c.want)
		}
	}
}

func TestAuditPolicyIsMarked(t *testing.T) {
	if !Default("audit", nil).Audit || Default("deny", nil).Audit {
		t.Fatal("only the audit default is in audit mode")
	}
}
