// Package inpolicy is the proxy's inbound policy (outpolicy is the outbound one): the
// policy of each inbound port, from the policy controller's
// InboundServerPolicies.WatchPort stream (nothing is served on a port until the first
// answer, and the last answer stays in force while the controller is unreachable;
// without a controller, the default policy of LINKERD2_PROXY_INBOUND_DEFAULT_POLICY
// applies everywhere), the check of a client's address and mesh identity against it,
// and the route of each request (matched by routematch, as outbound routes are).
package inpolicy

import (
	"fmt"
	"net/netip"
	"strings"

	pb "github.com/l5d-go/l5d/proto/gen/inbound"
	pbnet "github.com/l5d-go/l5d/proto/gen/net"
	"github.com/l5d-go/l5d/proto/netconv"
	"github.com/l5d-go/l5d/proxy/routematch"
)

// Port is the policy of one inbound port.
type Port struct {
	// Server names the Server (or default policy) that governs the port, for metrics.
	Server, ServerKind string
	// Opaque is true when the controller says the port carries opaque TCP.
	Opaque bool
	// Audit means refusals are only counted and logged: the client is let through.
	Audit bool
	authz []Authz
	// routes are the HTTP (or, when grpc, gRPC) routes requests are matched to; a server
	// that declares none has one default route admitting what its authorizations admit.
	// match[i] is what chooses routes[i].
	routes       []Route
	match        routematch.Table
	grpc         bool
	needsHeaders bool
	// declared is set when the server declares an HTTP protocol (HTTP/1, HTTP/2, gRPC)
	// rather than detecting it.
	declared bool
	// RateLimit is the server's HTTPLocalRateLimitPolicy; nil when it has none.
	RateLimit *RateLimit
}

// OpaqueFallback reports whether a connection to the port that does not speak HTTP
// (detection found another protocol or gave up) may be served as opaque TCP, under the
// server-level authorizations: only when the port is opaque, or detects its protocol and
// has no HTTP route of its own (only the default routes, which admit what the server's
// authorizations admit). A server with routes of its own, or of a declared HTTP protocol,
// is only reachable through its routes.
func (p *Port) OpaqueFallback() bool {
	if p.Opaque {
		return true
	}
	if p.declared {
		return false
	}
	for i := range p.routes {
		if p.routes[i].Kind != "default" {
			return false
		}
	}
	return true
}

// Authz is one authorization: clients from Networks, authenticated as required.
type Authz struct {
	// Name and Kind identify the authorization for metrics.
	Name, Kind      string
	nets            []network
	unauthenticated bool
	anyIdentity     bool
	identities      map[string]struct{}
	suffixes        []string // ".<suffix>" an identity must end with
}

type network struct {
	net    netip.Prefix
	except []netip.Prefix
}

// Allow returns the authorization that admits a client at addr with mesh identity id
// ("" when the connection is not mesh TLS), or ok=false.
// This is the connection-level check of opaque connections; HTTP requests are checked
// against the authorizations of their route (see Match and Route.Allow).
func (p *Port) Allow(addr netip.Addr, id string) (a *Authz, ok bool) { return allow(p.authz, addr, id) }

func allow(authz []Authz, addr netip.Addr, id string) (*Authz, bool) {
	addr = addr.Unmap()
	for i := range authz {
		a := &authz[i]
		if !a.fromNetwork(addr) {
			continue
		}
		if a.unauthenticated {
			return a, true
		}
		if id == "" {
			continue
		}
		if a.anyIdentity {
			return a, true
		}
		if _, ok := a.identities[id]; ok {
			return a, true
		}
		for _, s := range a.suffixes {
			if strings.HasSuffix(id, s) {
				return a, true
			}
		}
	}
	return nil, false
}

func (a *Authz) fromNetwork(addr netip.Addr) bool {
	for _, n := range a.nets {
		if !n.net.Contains(addr) {
			continue
		}
		excluded := false
		for _, e := range n.except {
			if e.Contains(addr) {
				excluded = true
			}
		}
		if !excluded {
			return true
		}
	}
	return false
}

var everywhere = []network{{net: netip.MustParsePrefix("0.0.0.0/0")}, {net: netip.MustParsePrefix("::/0")}}

// Default returns the policy a default name stands for (all-unauthenticated,
// all-authenticated, cluster-unauthenticated, cluster-authenticated, deny, audit); audit
// authorizes nobody but only counts refusals (see Port.Audit).
func Default(name string, cluster []netip.Prefix) *Port {
	var clusterNets []network
	for _, p := range cluster {
		clusterNets = append(clusterNets, network{net: p})
	}
	p := &Port{Server: name, ServerKind: "default"}
	a := Authz{Name: name, Kind: "default"}
	switch name {
	case "all-unauthenticated":
		a.nets, a.unauthenticated = everywhere, true
	case "audit":
		p.Audit = true
		p.setDefaultRoute(nil)
		return p
	case "cluster-unauthenticated":
		a.nets, a.unauthenticated = clusterNets, true
	case "all-authenticated":
		a.nets, a.anyIdentity = everywhere, true
	case "cluster-authenticated":
		a.nets, a.anyIdentity = clusterNets, true
	default: // deny
		p.setDefaultRoute(nil)
		return p
	}
	p.authz = []Authz{a}
	p.setDefaultRoute(p.authz)
	return p
}

// FromProto translates a controller answer, compiling its routes (the HTTP routes of a
// Detect, HTTP/1 or HTTP/2 server, the gRPC routes of a gRPC server). It fails, naming
// the problem, when a route cannot be compiled (an invalid regular expression...).
func FromProto(s *pb.Server) (*Port, error) {
	p := &Port{Server: s.Labels["name"], ServerKind: s.Labels["kind"], Opaque: s.GetProtocol().GetOpaque() != nil,
		Audit: s.Labels["kind"] == "default" && s.Labels["name"] == "audit"}
	p.authz = authorizations(s.GetAuthorizations())
	var httpRoutes []*pb.HttpRoute
	var grpcRoutes []*pb.GrpcRoute
	proto := s.GetProtocol()
	switch {
	case proto.GetDetect() != nil:
		httpRoutes = proto.GetDetect().GetHttpRoutes()
		p.RateLimit = rateLimitFromProto(proto.GetDetect().GetHttpLocalRateLimit())
	case proto.GetHttp1() != nil:
		p.declared = true
		httpRoutes = proto.GetHttp1().GetRoutes()
		p.RateLimit = rateLimitFromProto(proto.GetHttp1().GetLocalRateLimit())
	case proto.GetHttp2() != nil:
		p.declared = true
		httpRoutes = proto.GetHttp2().GetRoutes()
		p.RateLimit = rateLimitFromProto(proto.GetHttp2().GetLocalRateLimit())
	case proto.GetGrpc() != nil:
		p.grpc, p.declared = true, true
		grpcRoutes = proto.GetGrpc().GetRoutes()
	}
	for _, r := range httpRoutes {
		rt, m, err := compileHTTPRoute(r, p.authz)
		if err != nil {
			return nil, fmt.Errorf("server %s: %w", p.Server, err)
		}
		p.routes, p.match = append(p.routes, rt), append(p.match, m)
	}
	for _, r := range grpcRoutes {
		rt, m, err := compileGRPCRoute(r, p.authz)
		if err != nil {
			return nil, fmt.Errorf("server %s: %w", p.Server, err)
		}
		p.routes, p.match = append(p.routes, rt), append(p.match, m)
	}
	if len(p.routes) == 0 {
		// An older controller, or an opaque server that sees HTTP anyway.
		p.setDefaultRoute(p.authz)
	}
	p.needsHeaders = p.match.NeedsHeaders()
	return p, nil
}

// authorizations translates the controller's authorizations.
func authorizations(azs []*pb.Authz) []Authz {
	var out []Authz
	for _, az := range azs {
		a := Authz{Name: az.Labels["name"], Kind: az.Labels["kind"]}
		for _, n := range az.GetNetworks() {
			nw := network{net: prefix(n.GetNet())}
			for _, e := range n.GetExcept() {
				nw.except = append(nw.except, prefix(e))
			}
			if nw.net.IsValid() {
				a.nets = append(a.nets, nw)
			}
		}
		switch {
		case az.GetAuthentication().GetUnauthenticated() != nil:
			a.unauthenticated = true
		case az.GetAuthentication().GetMeshTLS() != nil:
			m := az.GetAuthentication().GetMeshTLS()
			if m.GetUnauthenticated() != nil {
				a.anyIdentity = true
			}
			ids := m.GetIdentities()
			for _, id := range ids.GetIdentities() {
				if a.identities == nil {
					a.identities = map[string]struct{}{}
				}
				a.identities[id.GetName()] = struct{}{}
			}
			for _, s := range ids.GetSuffixes() {
				if len(s.GetParts()) == 0 {
					a.anyIdentity = true
				} else {
					a.suffixes = append(a.suffixes, "."+strings.Join(s.GetParts(), "."))
				}
			}
		}
		out = append(out, a)
	}
	return out
}

func prefix(n *pbnet.IPNetwork) netip.Prefix {
	p, _ := netconv.Prefix(n)
	return p
}
