package outpolicy

import (
	"context"
	"errors"
	"fmt"

	pb "github.com/l5d-go/l5d/proto/gen/outbound"
	"github.com/l5d-go/l5d/proxy/forward"
)

// compileOpaque compiles the first opaque route's first rule (opaque routes have no
// matches: the first applies to every connection) into a rule whose weighted backends
// take opaque connections (a TCPRoute's traffic split); nil without one. A backend with
// an Invalid or Forbidden filter has no authority: its share of connections is closed.
func compileOpaque(routes []*pb.OpaqueRoute) (*Rule, error) {
	if len(routes) == 0 || len(routes[0].GetRules()) == 0 {
		return nil, nil
	}
	group, kind, name := routeMeta(routes[0].GetMetadata())
	r := &Rule{Group: group, Kind: kind, Name: name, ref: metaRef(routes[0].GetMetadata())}
	d := routes[0].GetRules()[0].GetBackends()
	var raw []rawBackend
	add := func(rb *pb.OpaqueRoute_RouteBackend, weight uint32) {
		be := rb.GetBackend()
		if len(rb.GetFilters()) > 0 {
			be = &pb.Backend{Metadata: be.GetMetadata()} // refused: no authority
		}
		raw = append(raw, rawBackend{backend: be, weight: weight})
	}
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
	if err := r.setBackends(raw); err != nil {
		return nil, fmt.Errorf("opaque route %s: %w", name, err)
	}
	return r, nil
}

// errOpaqueRefused is returned for a connection the opaque route refuses.
var errOpaqueRefused = errors.New("opaque connection refused by the route")

// PickOpaque chooses the backend of an opaque connection to the target by its policy's
// opaque route: ok=false when the policy has none (the target's own backend applies),
// an error when the route refuses the connection (a Forbidden or Invalid filter, a
// backend that does not resolve, all weights 0).
func (rt *Router) PickOpaque(ctx context.Context) (*forward.Backend, bool, error) {
	p := rt.cur.Load()
	if p == nil || p.opaque == nil {
		return nil, false, nil
	}
	if p.opaqueRefusal != "" {
		return nil, false, fmt.Errorf("%w: %s", errOpaqueRefused, p.opaqueRefusal)
	}
	return rt.pickFrom(ctx, p.opaque)
}

// pickFrom chooses a backend of a connection-level rule by weight and resolves it.
func (rt *Router) pickFrom(ctx context.Context, r *Rule) (*forward.Backend, bool, error) {
	b := r.pick()
	if b == nil || b.authority == "" {
		return nil, false, fmt.Errorf("%w %s: no backend to connect to", errOpaqueRefused, r.Name)
	}
	be, ok, err := rt.resolve(ctx, b.authority)
	if err != nil {
		return nil, false, fmt.Errorf("discovering route backend %s: %w", b.authority, err)
	}
	if !ok {
		return nil, false, fmt.Errorf("%w %s: backend %s is not a service", errOpaqueRefused, r.Name, b.authority)
	}
	return be, true, nil
}
