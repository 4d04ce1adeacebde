package server

import (
	"net/netip"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/l5d-go/l5d/destination/authority"
	sp "github.com/l5d-go/l5d/pkg/apis/serviceprofile"
	pb "github.com/l5d-go/l5d/proto/gen/destination"
	"github.com/l5d-go/l5d/proto/gen/httptypes"
	"github.com/l5d-go/l5d/proto/gen/meta"
)

// defaultRetryBudget is Linkerd's: 20% extra load, at least 10 retries/s, over 10s.
func defaultRetryBudget() *pb.RetryBudget {
	return &pb.RetryBudget{RetryRatio: 0.2, MinRetriesPerSecond: 10, Ttl: durationpb.New(10 * time.Second)}
}

// profile computes the profile of t for a client in clientNS.
func (s *Server) profile(t authority.Target, clientNS string) *pb.DestinationProfile {
	p := &pb.DestinationProfile{RetryBudget: defaultRetryBudget()}
	if t.IP.IsValid() {
		if svc := s.idx.ServiceByClusterIP(t.IP); svc != nil {
			t = authority.Target{Service: svc.Name, Namespace: svc.Namespace, Port: t.Port}
		} else {
			if pod := s.idx.PodByIP(t.IP); pod != nil {
				ap := netip.AddrPortFrom(t.IP, uint16(t.Port))
				p.Endpoint = s.weightedAddr(ap, pod, nil)
				// Get's endpoints leave the namespace to the set's labels; a lone
				// endpoint carries it itself, as Linkerd's does.
				p.Endpoint.MetricLabels["namespace"] = pod.Namespace
				p.OpaqueProtocol = s.opaque(nil, pod, uint16(t.Port))
			} else {
				p.OpaqueProtocol = s.cfg.DefaultOpaquePorts.Contains(uint16(t.Port))
			}
			return p
		}
	}
	if t.Hostname != "" {
		// A pod's name under a headless Service (<pod>.<svc>.<ns>.svc...): as Linkerd's,
		// the answer is that pod as a lone endpoint, not the Service.
		s.hostnameEndpoint(p, t)
		return p
	}
	// A Service that does not exist (yet) gets the default profile, named, as Linkerd's
	// does: Get then says whether it exists.
	fqdn := t.FQDN(s.cfg.ClusterDomain)
	p.FullyQualifiedName = fqdn
	p.ParentRef = &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{
		Group: "core", Kind: "Service", Name: t.Service, Namespace: t.Namespace, Port: t.Port}}}
	svc, err := s.idx.Services.Services(t.Namespace).Get(t.Service)
	if err != nil {
		p.OpaqueProtocol = s.cfg.DefaultOpaquePorts.Contains(uint16(t.Port))
		return p
	}
	p.OpaqueProtocol = s.opaque(svc, nil, uint16(t.Port))
	var prof *sp.ServiceProfile
	if clientNS != "" && clientNS != t.Namespace {
		prof = s.idx.Profile(clientNS, fqdn)
	}
	if prof == nil {
		prof = s.idx.Profile(t.Namespace, fqdn)
	}
	if prof != nil {
		applyProfile(p, prof)
		p.ProfileRef = &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{
			Group: "linkerd.io", Kind: "ServiceProfile", Name: prof.Name, Namespace: prof.Namespace}}}
	}
	return p
}

// hostnameEndpoint sets p's endpoint to the ready address of t's Service whose hostname is
// t.Hostname, on t's port; nothing when there is none.
func (s *Server) hostnameEndpoint(p *pb.DestinationProfile, t authority.Target) {
	set := s.endpoints(t, "")
	for ap, wa := range set.addrs {
		pod := s.idx.PodByIP(ap.Addr())
		p.Endpoint = wa
		delete(p.Endpoint.MetricLabels, "zone_locality")
		if pod != nil {
			p.Endpoint.MetricLabels["namespace"] = pod.Namespace
		}
		svc, _ := s.idx.Services.Services(t.Namespace).Get(t.Service)
		p.OpaqueProtocol = s.opaque(svc, pod, ap.Port())
		return
	}
}

// applyProfile translates a ServiceProfile into p. Invalid parts (which the validator
// refuses) are skipped.
func applyProfile(p *pb.DestinationProfile, prof *sp.ServiceProfile) {
	for _, r := range prof.Spec.Routes {
		cond := requestMatch(r.Condition)
		if cond == nil {
			continue
		}
		route := &pb.Route{Condition: cond, MetricsLabels: map[string]string{"route": r.Name}, IsRetryable: r.IsRetryable}
		if d, err := time.ParseDuration(r.Timeout); err == nil && d > 0 {
			route.Timeout = durationpb.New(d)
		}
		for _, rc := range r.ResponseClasses {
			if m := responseMatch(rc.Condition); m != nil {
				route.ResponseClasses = append(route.ResponseClasses, &pb.ResponseClass{Condition: m, IsFailure: rc.IsFailure})
			}
		}
		p.Routes = append(p.Routes, route)
	}
	if b := prof.Spec.RetryBudget; b != nil {
		ttl, err := time.ParseDuration(b.TTL)
		if err == nil {
			p.RetryBudget = &pb.RetryBudget{RetryRatio: b.RetryRatio, MinRetriesPerSecond: b.MinRetriesPerSecond, Ttl: durationpb.New(ttl)}
		}
	}
	for _, d := range prof.Spec.DstOverrides {
		if d == nil || d.Authority == "" {
			continue
		}
		// The weight is a quantity (1, 900m...); the proxy API's scale is Linkerd's
		// 10,000 for 100%, so 900m (0.9) is 9000.
		p.DstOverrides = append(p.DstOverrides, &pb.WeightedDst{Authority: d.Authority, Weight: uint32(d.Weight.MilliValue() * (defaultWeight / 1000))})
	}
}

func requestMatch(m *sp.RequestMatch) *pb.RequestMatch {
	if m == nil {
		return nil
	}
	seq := func(ms []*sp.RequestMatch) *pb.RequestMatch_Seq {
		out := &pb.RequestMatch_Seq{}
		for _, x := range ms {
			if c := requestMatch(x); c != nil {
				out.Matches = append(out.Matches, c)
			}
		}
		return out
	}
	// Several fields in one condition all have to match, as in Linkerd.
	var parts []*pb.RequestMatch
	if len(m.All) > 0 {
		parts = append(parts, &pb.RequestMatch{Match: &pb.RequestMatch_All{All: seq(m.All)}})
	}
	if len(m.Any) > 0 {
		parts = append(parts, &pb.RequestMatch{Match: &pb.RequestMatch_Any{Any: seq(m.Any)}})
	}
	if m.Not != nil {
		if n := requestMatch(m.Not); n != nil {
			parts = append(parts, &pb.RequestMatch{Match: &pb.RequestMatch_Not{Not: n}})
		}
	}
	if m.PathRegex != "" {
		parts = append(parts, &pb.RequestMatch{Match: &pb.RequestMatch_Path{Path: &pb.PathMatch{Regex: m.PathRegex}}})
	}
	if m.Method != "" {
		parts = append(parts, &pb.RequestMatch{Match: &pb.RequestMatch_Method{Method: method(m.Method)}})
	}
	switch len(parts) {
	case 0:
		return nil
	case 1:
		return parts[0]
	}
	return &pb.RequestMatch{Match: &pb.RequestMatch_All{All: &pb.RequestMatch_Seq{Matches: parts}}}
}

func method(m string) *httptypes.HttpMethod {
	if v, ok := httptypes.HttpMethod_Registered_value[strings.ToUpper(m)]; ok {
		return &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Registered_{Registered: httptypes.HttpMethod_Registered(v)}}
	}
	return &httptypes.HttpMethod{Type: &httptypes.HttpMethod_Unregistered{Unregistered: m}}
}

func responseMatch(m *sp.ResponseMatch) *pb.ResponseMatch {
	if m == nil {
		return nil
	}
	seq := func(ms []*sp.ResponseMatch) *pb.ResponseMatch_Seq {
		out := &pb.ResponseMatch_Seq{}
		for _, x := range ms {
			if c := responseMatch(x); c != nil {
				out.Matches = append(out.Matches, c)
			}
		}
		return out
	}
	switch {
	case len(m.All) > 0:
		return &pb.ResponseMatch{Match: &pb.ResponseMatch_All{All: seq(m.All)}}
	case len(m.Any) > 0:
		return &pb.ResponseMatch{Match: &pb.ResponseMatch_Any{Any: seq(m.Any)}}
	case m.Not != nil:
		if n := responseMatch(m.Not); n != nil {
			return &pb.ResponseMatch{Match: &pb.ResponseMatch_Not{Not: n}}
		}
	case m.Status != nil:
		max := m.Status.Max
		if max == 0 {
			max = 599
		}
		return &pb.ResponseMatch{Match: &pb.ResponseMatch_Status{Status: &pb.HttpStatusRange{Min: m.Status.Min, Max: max}}}
	}
	return nil
}
