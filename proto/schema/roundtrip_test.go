package schema

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/identity"
	"github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/net"
	"github.com/l5d-go/l5d/proto/gen/outbound"
)

func TestDestinationUpdateRoundTrip(t *testing.T) {
	in := &destination.Update{Update: &destination.Update_Add{Add: &destination.WeightedAddrSet{
		MetricLabels: map[string]string{"namespace": "emojivoto", "service": "web-svc"},
		Addrs: []*destination.WeightedAddr{{
			Addr:         &net.TcpAddress{Ip: &net.IPAddress{Ip: &net.IPAddress_Ipv4{Ipv4: 0x0af40005}}, Port: 8080},
			Weight:       10000,
			MetricLabels: map[string]string{"pod": "web-0", "deployment": "web"},
			TlsIdentity: &destination.TlsIdentity{Strategy: &destination.TlsIdentity_DnsLikeIdentity_{
				DnsLikeIdentity: &destination.TlsIdentity_DnsLikeIdentity{Name: "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"},
			}},
			ProtocolHint: &destination.ProtocolHint{Protocol: &destination.ProtocolHint_H2_{H2: &destination.ProtocolHint_H2{}}},
		}},
	}}}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := &destination.Update{}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, out) {
		t.Fatalf("round trip changed the message:\n in %v\nout %v", in, out)
	}
}

// FuzzUnmarshal feeds arbitrary bytes to the messages the control plane and the proxy
// receive from each other; decoding must fail cleanly, never panic.
func FuzzUnmarshal(f *testing.F) {
	seed, _ := proto.Marshal(&identity.CertifyRequest{Identity: "a.b.serviceaccount.identity.linkerd.cluster.local", Token: []byte("t"), CertificateSigningRequest: []byte{0x30}})
	f.Add(seed)
	f.Add([]byte{0x0a, 0x05, 'h', 'e', 'l', 'l', 'o'})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []proto.Message{
			&identity.CertifyRequest{}, &identity.CertifyResponse{},
			&destination.GetDestination{}, &destination.Update{}, &destination.DestinationProfile{},
			&inbound.PortSpec{}, &inbound.Server{},
			&outbound.TrafficSpec{}, &outbound.OutboundPolicy{},
		} {
			_ = proto.Unmarshal(data, m)
		}
	})
}
