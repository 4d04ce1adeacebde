package outpolicy

import (
	"net/http"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/l5d-go/l5d/proto/gen/outbound"
)

// FuzzFromProto feeds arbitrary OutboundPolicy messages to the compiler and routes a few
// requests through what it accepts: neither may panic.
func FuzzFromProto(f *testing.F) {
	for _, m := range []*pb.OutboundPolicy{detect(defaultRoute()), detect(&pb.HttpRoute{Metadata: resourceMeta("r"), Rules: defaultRoute().Rules})} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m pb.OutboundPolicy
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		p, err := FromProto(&m)
		if err != nil {
			return
		}
		for _, r := range []*http.Request{request("GET", "/"), request("POST", "/api/x?v=1", "X-Canary", "1")} {
			if rule, ok := p.Match(r); ok {
				rule.filters.apply(r.Header)
				if rd := rule.filters.redirect; rd != nil {
					rd.location(r)
				}
				if b := rule.pick(); b != nil {
					b.filters.apply(r.Header)
				}
			}
		}
	})
}
