package inbound

import (
	"math"
	"strings"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/meta"
)

// rateLimitKind is the kind the rate limit's metadata names (the proxy's ratelimit_kind).
const rateLimitKind = "HTTPLocalRateLimitPolicy"

// rateLimit renders the HTTPLocalRateLimitPolicy targeting srv, or nil. As in Linkerd a
// Server has at most one: when several target it, the oldest (then the first by name)
// applies. A limit below 1 request per second is left out (no limit), one above the
// API's 32 bits is capped; overrides name clients by ServiceAccount.
func (c Config) rateLimit(x *Index, srv *api.Server) *pb.HttpLocalRateLimit {
	var found []*api.HTTPLocalRateLimitPolicy
	for _, p := range list[api.HTTPLocalRateLimitPolicy](x, api.HTTPLocalRateLimitPolicies, srv.Namespace) {
		t := p.Spec.TargetRef
		if strings.EqualFold(t.Kind, "Server") && (t.Group == "" || t.Group == api.Group) && t.Name == srv.Name {
			found = append(found, p)
		}
	}
	p := oldest(found)
	if p == nil {
		return nil
	}
	out := &pb.HttpLocalRateLimit{
		Metadata: &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{
			Group: api.Group, Kind: rateLimitKind, Name: p.Name, Namespace: p.Namespace}}},
		Total:    limit(p.Spec.Total),
		Identity: limit(p.Spec.Identity),
	}
	for _, o := range p.Spec.Overrides {
		l := limit(&api.Limit{RequestsPerSecond: o.RequestsPerSecond})
		if l == nil {
			continue
		}
		ids := &pb.HttpLocalRateLimit_Override_ClientIdentities{}
		for _, ref := range o.ClientRefs {
			if !strings.EqualFold(ref.Kind, "ServiceAccount") {
				continue
			}
			ns := ref.Namespace
			if ns == "" {
				ns = p.Namespace
			}
			ids.Identities = append(ids.Identities, &pb.Identity{Name: c.identity(ref.Name, ns)})
		}
		if len(ids.Identities) > 0 {
			out.Overrides = append(out.Overrides, &pb.HttpLocalRateLimit_Override{Limit: l, Clients: ids})
		}
	}
	return out
}

func limit(l *api.Limit) *pb.HttpLocalRateLimit_Limit {
	if l == nil || l.RequestsPerSecond < 1 {
		return nil
	}
	return &pb.HttpLocalRateLimit_Limit{RequestsPerSecond: uint32(min(l.RequestsPerSecond, math.MaxUint32))}
}
