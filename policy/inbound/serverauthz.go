package inbound

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/policy/network"
	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	"github.com/l5d-go/l5d/proto/gen/meta"
)

// serverAuthorizations renders the ServerAuthorizations in srv's namespace that select
// it (by name or by a selector over its labels), in name order. One that cannot be
// rendered is left out: it permits nothing.
func (c Config) serverAuthorizations(x *Index, srv *api.Server) []*pb.Authz {
	sazs := list[api.ServerAuthorization](x, api.ServerAuthorizations, srv.Namespace)
	sort.Slice(sazs, func(i, j int) bool { return sazs[i].Name < sazs[j].Name })
	var out []*pb.Authz
	for _, saz := range sazs {
		if !selectsServer(saz.Spec.Server, srv) {
			continue
		}
		a, err := c.serverAuthz(saz)
		if err != nil {
			continue
		}
		out = append(out, a)
	}
	return out
}

func selectsServer(ref api.ServerRef, srv *api.Server) bool {
	if ref.Name != "" {
		return ref.Name == srv.Name
	}
	if ref.Selector == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(ref.Selector)
	return err == nil && sel.Matches(labels.Set(srv.Labels))
}

// serverAuthz renders one ServerAuthorization's client, or an error naming why it
// authorizes no client.
func (c Config) serverAuthz(saz *api.ServerAuthorization) (*pb.Authz, error) {
	client := saz.Spec.Client
	out := &pb.Authz{
		Labels:   map[string]string{"group": api.Group, "kind": "serverauthorization", "name": saz.Name},
		Metadata: &meta.Metadata{Kind: &meta.Metadata_Resource{Resource: &meta.Resource{Group: api.Group, Kind: "serverauthorization", Name: saz.Name, Namespace: saz.Namespace}}},
	}
	switch {
	case client.Unauthenticated:
		out.Authentication = unauthenticated()
	case client.MeshTLS != nil && client.MeshTLS.UnauthenticatedTLS:
		out.Authentication = &pb.Authn{Permit: &pb.Authn_MeshTLS{MeshTLS: &pb.Authn_PermitMeshTLS{
			Clients: &pb.Authn_PermitMeshTLS_Unauthenticated{Unauthenticated: &pb.Authn_PermitUnauthenticated{}}}}}
	case client.MeshTLS != nil:
		ids, suffixes := identityMatches(client.MeshTLS.Identities)
		for _, sa := range client.MeshTLS.ServiceAccounts {
			ns := sa.Namespace
			if ns == "" {
				ns = saz.Namespace
			}
			ids = append(ids, c.identity(sa.Name, ns))
		}
		if len(ids) == 0 && len(suffixes) == 0 {
			return nil, fmt.Errorf("serverauthorization %s/%s: meshTLS names no identity or service account", saz.Namespace, saz.Name)
		}
		out.Authentication = meshTLS(ids, suffixes)
	default:
		return nil, fmt.Errorf("serverauthorization %s/%s: client is neither unauthenticated nor meshTLS", saz.Namespace, saz.Name)
	}
	if len(client.Networks) == 0 {
		out.Networks = networks(c.ClusterNetworks)
		return out, nil
	}
	for _, nw := range client.Networks {
		parsed, err := network.Parse(nw.CIDR, nw.Except)
		if err != nil {
			// Fail closed: skipping a bad entry could widen what is allowed.
			return nil, fmt.Errorf("serverauthorization %s/%s: %w", saz.Namespace, saz.Name, err)
		}
		entry := &pb.Network{Net: ipNet(parsed.Net)}
		for _, e := range parsed.Except {
			entry.Except = append(entry.Except, ipNet(e))
		}
		out.Networks = append(out.Networks, entry)
	}
	return out, nil
}
