package metricsapi

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/l5d-go/l5d/pkg/vizapi"
	"github.com/l5d-go/l5d/viz/metricsapi/promql"
)

// Edges answers an EdgesRequest: the resources of the selected type in the selected
// namespace that talk to one another or are talked to, from the proxies' response
// series (as Linkerd: every series the proxies still export, not a time window). An
// edge's ServerID is the identity the client's proxy verified (outbound server_id), its
// ClientID the identity the server's proxy saw (inbound client_id) for that client.
// Inbound traffic from clients whose proxies are not scraped (another namespace's, or
// unlisted workloads) gives an edge whose source is named after the client identity's
// service account and namespace.
func (s *Server) Edges(ctx context.Context, req *vizapi.EdgesRequest) (*vizapi.EdgesResponse, error) {
	sel := req.Selector.Resource
	if err := validResource("selector", &sel, false); err != nil {
		return nil, err
	}
	if sel.Type == vizapi.Authority || sel.Type == vizapi.Service || sel.Type == vizapi.Namespace {
		return nil, badRequest("edges of %ss are not supported: use a workload type or pod", sel.Type)
	}
	kl, err := promql.KindLabel(sel.Type)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	dkl := "dst_" + kl
	match := model.LabelSet{promql.LabelDirection: "outbound"}
	if sel.Namespace != "" {
		match[promql.LabelNamespace] = model.LabelValue(sel.Namespace)
	}
	out, err := s.vector(ctx, fmt.Sprintf("count(response_total%s) by (namespace, %s, dst_namespace, %s, server_id, no_tls_reason)", match, kl, dkl))
	if err != nil {
		return nil, err
	}
	in, err := s.vector(ctx, fmt.Sprintf(`count(response_total{direction="inbound", client_id!=""}) by (namespace, %s, client_id)`, kl))
	if err != nil {
		return nil, err
	}
	// Service accounts of the listed sources, to tell which inbound client_id is theirs.
	sas := map[key][]string{}
	if objs, err := s.Cache.List(vizapi.Resource{Type: sel.Type, Namespace: sel.Namespace}, req.Selector.LabelSelector); err == nil {
		for _, o := range objs {
			sas[key{o.Resource.Namespace, o.Resource.Name}] = o.ServiceAccounts
		}
	}
	clients := map[key][]string{} // server -> client identities it saw
	for _, smp := range in {
		k := key{string(smp.Metric[promql.LabelNamespace]), string(smp.Metric[model.LabelName(kl)])}
		clients[k] = append(clients[k], string(smp.Metric[promql.LabelClientID]))
	}
	seen := map[[2]key]bool{}
	claimed := map[string]bool{} // "server/client_id" pairs explained by an outbound edge
	var edges []vizapi.Edge
	for _, smp := range out {
		src := key{string(smp.Metric[promql.LabelNamespace]), string(smp.Metric[model.LabelName(kl)])}
		dst := key{string(smp.Metric["dst_namespace"]), string(smp.Metric[model.LabelName(dkl)])}
		if src.name == "" || dst.name == "" || seen[[2]key{src, dst}] {
			continue
		}
		seen[[2]key{src, dst}] = true
		e := vizapi.Edge{
			Src:           vizapi.Resource{Type: sel.Type, Namespace: src.ns, Name: src.name},
			Dst:           vizapi.Resource{Type: sel.Type, Namespace: dst.ns, Name: dst.name},
			ServerID:      string(smp.Metric[promql.LabelServerID]),
			NoIdentityMsg: string(smp.Metric[promql.LabelNoTLSReason]),
		}
		for _, id := range clients[dst] {
			sa, ns, ok := ParseIdentity(id)
			if ok && ns == src.ns && (len(sas[src]) == 0 || slices.Contains(sas[src], sa)) {
				e.ClientID = id
				claimed[dst.ns+"/"+dst.name+"/"+id] = true
				break
			}
		}
		edges = append(edges, e)
	}
	for dst, ids := range clients {
		if sel.Namespace != "" && dst.ns != sel.Namespace || dst.name == "" {
			continue
		}
		for _, id := range ids {
			sa, ns, ok := ParseIdentity(id)
			if !ok || claimed[dst.ns+"/"+dst.name+"/"+id] || seen[[2]key{{ns, sa}, dst}] {
				continue
			}
			seen[[2]key{{ns, sa}, dst}] = true
			edges = append(edges, vizapi.Edge{
				Src:      vizapi.Resource{Type: sel.Type, Namespace: ns, Name: sa},
				Dst:      vizapi.Resource{Type: sel.Type, Namespace: dst.ns, Name: dst.name},
				ClientID: id,
			})
		}
	}
	slices.SortFunc(edges, func(a, b vizapi.Edge) int {
		return strings.Compare(a.Src.Namespace+"/"+a.Src.Name+"/"+a.Dst.Namespace+"/"+a.Dst.Name,
			b.Src.Namespace+"/"+b.Src.Name+"/"+b.Dst.Namespace+"/"+b.Dst.Name)
	})
	return &vizapi.EdgesResponse{Ok: &vizapi.EdgesOk{Edges: edges}}, nil
}

// ParseIdentity splits a workload identity "<sa>.<ns>.serviceaccount.identity.<cp-ns>.<trust
// domain>" into its service account and namespace.
func ParseIdentity(id string) (sa, ns string, ok bool) {
	parts := strings.SplitN(id, ".", 4)
	if len(parts) < 4 || parts[2] != "serviceaccount" || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

func sortRows(rows []vizapi.StatRow) {
	slices.SortFunc(rows, func(a, b vizapi.StatRow) int {
		return strings.Compare(a.Resource.Namespace+"/"+a.Resource.Name, b.Resource.Namespace+"/"+b.Resource.Name)
	})
}
