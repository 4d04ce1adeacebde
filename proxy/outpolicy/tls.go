package outpolicy

import (
	"context"
	"fmt"
	"strings"

	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proxy/forward"
)

// tlsRoute is one compiled TLS route: the server names it takes and where they go.
type tlsRoute struct {
	exact    []string // lower-case names
	suffixes []string // ".example.com" for *.example.com
	rule     *Rule
	refusal  string // why the route refuses connections (a Forbidden or Invalid filter)
}

// matches reports whether sni is one of the route's names (every name when it has none)
// and how specifically: an exact name beats a longer suffix, which beats a shorter one.
func (r *tlsRoute) matches(sni string) (int, bool) {
	if len(r.exact) == 0 && len(r.suffixes) == 0 {
		return 0, true
	}
	for _, e := range r.exact {
		if e == sni {
			return 1 << 20, true
		}
	}
	best, ok := 0, false
	for _, s := range r.suffixes {
		if strings.HasSuffix(sni, s) && len(s) > best {
			best, ok = len(s), true
		}
	}
	return best, ok
}

// compileTLS compiles TLS routes: each route's SNI matches and its first rule's weighted
// backends (a backend with a filter is refused).
func compileTLS(routes []*pb.TlsRoute) ([]*tlsRoute, error) {
	var out []*tlsRoute
	for _, r := range routes {
		group, kind, name := routeMeta(r.GetMetadata())
		tr := &tlsRoute{rule: &Rule{Group: group, Kind: kind, Name: name, ref: metaRef(r.GetMetadata())}}
		for _, m := range r.GetSnis() {
			switch {
			case m.GetExact() != "":
				tr.exact = append(tr.exact, strings.ToLower(strings.TrimSuffix(m.GetExact(), ".")))
			case m.GetSuffix() != nil && len(m.GetSuffix().GetReverseLabels()) > 0:
				labels := m.GetSuffix().GetReverseLabels()
				var sb strings.Builder
				for i := len(labels) - 1; i >= 0; i-- {
					sb.WriteString("." + strings.ToLower(labels[i]))
				}
				tr.suffixes = append(tr.suffixes, sb.String())
			default:
				return nil, fmt.Errorf("TLS route %s: empty SNI match", name)
			}
		}
		if len(r.GetRules()) > 0 {
			rule := r.GetRules()[0]
			for _, f := range rule.GetFilters() {
				switch {
				case f.GetForbidden() != nil:
					tr.refusal = "connection forbidden by route " + name
				case f.GetInvalid() != nil:
					tr.refusal = "invalid route " + name + ": " + f.GetInvalid().GetMessage()
				}
			}
			var raw []rawBackend
			add := func(rb *pb.TlsRoute_RouteBackend, weight uint32) {
				be := rb.GetBackend()
				if len(rb.GetFilters()) > 0 {
					be = &pb.Backend{Metadata: be.GetMetadata()}
				}
				raw = append(raw, rawBackend{backend: be, weight: weight})
			}
			d := rule.GetBackends()
			switch {
			case d.GetFirstAvailable() != nil:
				if bs := d.GetFirstAvailable().GetBackends(); len(bs) > 0 {
					add(bs[0], 1)
				}
			case d.GetRandomAvailable() != nil:
				for _, wb := range d.GetRandomAvailable().GetBackends() {
					add(wb.GetBackend(), wb.GetWeight())
				}
			}
			if err := tr.rule.setBackends(raw); err != nil {
				return nil, fmt.Errorf("TLS route %s: %w", name, err)
			}
		}
		out = append(out, tr)
	}
	return out, nil
}

// RoutesTLS reports whether the target's policy routes TLS connections by server name
// (the caller then reads the name with tlssni.Peek and calls PickTLS).
func (rt *Router) RoutesTLS() bool {
	p := rt.cur.Load()
	return p != nil && len(p.tls) > 0
}

// PickTLS chooses the backend of a TLS connection asking for server name sni by the
// policy's TLS routes: the most specific match, the first declared among equals. No
// matching route, a refusing one or a backend that does not resolve is an error.
func (rt *Router) PickTLS(ctx context.Context, sni string) (*forward.Backend, bool, error) {
	p := rt.cur.Load()
	if p == nil || len(p.tls) == 0 {
		return nil, false, nil
	}
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	var best *tlsRoute
	bestRank := -1
	for _, r := range p.tls {
		if rank, ok := r.matches(sni); ok && rank > bestRank {
			best, bestRank = r, rank
		}
	}
	if best == nil {
		return nil, false, fmt.Errorf("%w: no TLS route for server name %q", errOpaqueRefused, sni)
	}
	if best.refusal != "" {
		return nil, false, fmt.Errorf("%w: %s", errOpaqueRefused, best.refusal)
	}
	return rt.pickFrom(ctx, best.rule)
}
