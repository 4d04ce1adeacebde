package schema

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/identity"
	"github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/net"
	"github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proto/gen/tap"
)

func TestDestinationUpdateRoundTrip(t *testing.T) {
	ipv4 := func(a uint32, port uint32) *net.TcpAddress {
		return &net.TcpAddress{Ip: &net.IPAddress{Ip: &net.IPAddress_Ipv4{Ipv4: a}}, Port: port}
	}
	for _, tc := range []struct {
		name string
		msg  *destination.Update
	}{
		{"add", &destination.Update{Update: &destination.Update_Add{Add: &destination.WeightedAddrSet{
			MetricLabels: map[string]string{"namespace": "emojivoto", "service": "web-svc"},
			Addrs: []*destination.WeightedAddr{{
				Addr:         ipv4(0x0af40005, 8080),
				Weight:       10000,
				MetricLabels: map[string]string{"pod": "web-0", "deployment": "web", "serviceaccount": "web"},
				TlsIdentity: &destination.TlsIdentity{Strategy: &destination.TlsIdentity_DnsLikeIdentity_{
					DnsLikeIdentity: &destination.TlsIdentity_DnsLikeIdentity{Name: "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"},
				}},
				ProtocolHint: &destination.ProtocolHint{
					Protocol:        &destination.ProtocolHint_H2_{H2: &destination.ProtocolHint_H2{}},
					OpaqueTransport: &destination.ProtocolHint_OpaqueTransport{InboundPort: 4143},
				},
			}},
		}}}},
		{"remove", &destination.Update{Update: &destination.Update_Remove{Remove: &destination.AddrSet{
			Addrs: []*net.TcpAddress{
				ipv4(0x0af40005, 8080),
				{Ip: &net.IPAddress{Ip: &net.IPAddress_Ipv6{Ipv6: &net.IPv6{First: 0xfd00000000000000, Last: 1}}}, Port: 80},
			},
		}}}},
		{"no endpoints", &destination.Update{Update: &destination.Update_NoEndpoints{NoEndpoints: &destination.NoEndpoints{Exists: false}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			out := &destination.Update{}
			if err := proto.Unmarshal(b, out); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(tc.msg, out) {
				t.Fatalf("round trip changed the message:\n in %v\nout %v", tc.msg, out)
			}
		})
	}
}

// TestWireBytes checks encodings against bytes written out by hand from the schema, so
// a change of field number or wire type shows up independently of the descriptors.
func TestWireBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  proto.Message
		want []byte
	}{
		{
			"GetDestination scheme=1 path=2 context_token=3",
			&destination.GetDestination{Scheme: "k8s", Path: "a:80", ContextToken: "{}"},
			[]byte{0x0a, 3, 'k', '8', 's', 0x12, 4, 'a', ':', '8', '0', 0x1a, 2, '{', '}'},
		},
		{
			"IPAddress ipv4 is fixed32 field 1",
			&net.IPAddress{Ip: &net.IPAddress_Ipv4{Ipv4: 0x0a000001}},
			[]byte{0x0d, 0x01, 0x00, 0x00, 0x0a},
		},
		{
			"NoEndpoints exists=true inside Update field 3",
			&destination.Update{Update: &destination.Update_NoEndpoints{NoEndpoints: &destination.NoEndpoints{Exists: true}}},
			[]byte{0x1a, 2, 0x08, 1},
		},
		{
			"PortSpec workload=1 port=2",
			&inbound.PortSpec{Workload: "x", Port: 4191},
			[]byte{0x0a, 1, 'x', 0x10, 0xdf, 0x20},
		},
		{
			"TrafficSpec authority is field 3",
			&outbound.TrafficSpec{SourceWorkload: "w", Target: &outbound.TrafficSpec_Authority{Authority: "a"}},
			[]byte{0x0a, 1, 'w', 0x1a, 1, 'a'},
		},
		{
			"CertifyRequest csr is bytes field 3",
			&identity.CertifyRequest{CertificateSigningRequest: []byte{0x30}},
			[]byte{0x1a, 1, 0x30},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("encoding = % x, want % x", got, tc.want)
			}
		})
	}
}

// FuzzUnmarshal feeds arbitrary bytes to the messages the control plane and the proxy
// receive from each other. Decoding must fail cleanly, never panic, and whatever decodes
// must re-encode to bytes that decode and re-encode to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	seeds := []proto.Message{
		&identity.CertifyRequest{Identity: "a.b.serviceaccount.identity.linkerd.cluster.local", Token: []byte("t"), CertificateSigningRequest: []byte{0x30}},
		&destination.GetDestination{Path: "web.emojivoto.svc.cluster.local:80", ContextToken: `{"ns":"default"}`},
		&destination.Update{Update: &destination.Update_Add{Add: &destination.WeightedAddrSet{
			MetricLabels: map[string]string{"service": "web"},
			Addrs:        []*destination.WeightedAddr{{Weight: 1, MetricLabels: map[string]string{"pod": "p"}}},
		}}},
		&inbound.PortSpec{Workload: `{"ns":"a","pod":"b"}`, Port: 8080},
		&tap.ObserveRequest{Limit: 10},
	}
	for _, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x05, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0xff, 0xff, 0xff})
	det := proto.MarshalOptions{Deterministic: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []proto.Message{
			&identity.CertifyRequest{}, &identity.CertifyResponse{},
			&destination.GetDestination{}, &destination.Update{}, &destination.DestinationProfile{},
			&inbound.PortSpec{}, &inbound.Server{},
			&outbound.TrafficSpec{}, &outbound.OutboundPolicy{},
			&tap.ObserveRequest{}, &tap.TapEvent{},
		} {
			if err := proto.Unmarshal(data, m); err != nil {
				continue
			}
			once, err := det.Marshal(m)
			if err != nil {
				t.Fatalf("%T decoded but does not re-encode: %v", m, err)
			}
			again := m.ProtoReflect().Type().New().Interface()
			if err := proto.Unmarshal(once, again); err != nil {
				t.Fatalf("%T: re-encoded bytes do not decode: %v", m, err)
			}
			twice, err := det.Marshal(again)
			if err != nil {
				t.Fatalf("%T: %v", m, err)
			}
			if !bytes.Equal(once, twice) {
				t.Fatalf("%T: encoding is not stable:\n% x\n% x", m, once, twice)
			}
		}
	})
}
