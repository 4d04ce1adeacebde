// Package validator is the linkerd-policy-validator admission webhook: it refuses
// policy.linkerd.io resources the policy controller could not serve as written (bad CIDRs,
// unknown reference kinds, malformed identities, ports, selectors and protocols), with a
// message naming each offending field.
package validator

import (
	"fmt"
	"slices"
	"strings"

	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/pkg/proxyconf"
)

// Groups of the kinds that references may name.
const (
	coreGroup    = ""
	gatewayGroup = "gateway.networking.k8s.io"
)

var spec = field.NewPath("spec")

// NetworkAuthentication checks that a NetworkAuthentication lists at least one network,
// that every cidr and except entry parses, and that each exception lies inside its network
// without covering all of it.
func NetworkAuthentication(n *api.NetworkAuthentication) field.ErrorList {
	nets := spec.Child("networks")
	if len(n.Spec.Networks) == 0 {
		return field.ErrorList{field.Required(nets, "at least one network is needed; an empty list permits no client")}
	}
	return networks(nets, n.Spec.Networks)
}

// networks checks a list of networks with exceptions, as a NetworkAuthentication and a
// ServerAuthorization give them.
func networks(nets *field.Path, list []api.Network) field.ErrorList {
	var errs field.ErrorList
	for i, nw := range list {
		f := nets.Index(i)
		cidr, err := proxyconf.ParseNetwork(nw.CIDR)
		if err != nil {
			errs = append(errs, field.Invalid(f.Child("cidr"), nw.CIDR, err.Error()))
			continue
		}
		for j, e := range nw.Except {
			g := f.Child("except").Index(j)
			ex, err := proxyconf.ParseNetwork(e)
			sameFamily := ex.Addr().Is4() == cidr.Addr().Is4()
			switch {
			case err != nil:
				errs = append(errs, field.Invalid(g, e, err.Error()))
			case sameFamily && ex.Bits() <= cidr.Bits() && ex.Contains(cidr.Addr()):
				errs = append(errs, field.Invalid(g, e, fmt.Sprintf("excludes all of the network %s", cidr)))
			case !sameFamily || !cidr.Contains(ex.Addr()):
				errs = append(errs, field.Invalid(g, e, fmt.Sprintf("is not inside the network %s", cidr)))
			}
		}
	}
	return errs
}

// kindRef is a group and kind a reference may name, kinds compared without regard to case
// (as the index does).
type kindRef struct{ group, kind string }

func (k kindRef) String() string {
	if k.group == coreGroup {
		return k.kind
	}
	return k.kind + "." + k.group
}

// matchKind returns the allowed kind a reference names, or false. An empty or "core" group
// is the core API group.
func matchKind(group, kind string, allowed []kindRef) (kindRef, bool) {
	if group == "core" {
		group = coreGroup
	}
	for _, a := range allowed {
		if strings.EqualFold(a.kind, kind) && strings.EqualFold(a.group, group) {
			return a, true
		}
	}
	return kindRef{}, false
}

var (
	server     = kindRef{api.Group, "Server"}
	namespace  = kindRef{coreGroup, "Namespace"}
	policyHTTP = kindRef{api.Group, "HTTPRoute"}
	gwHTTP     = kindRef{gatewayGroup, "HTTPRoute"}
	gwGRPC     = kindRef{gatewayGroup, "GRPCRoute"}
	meshTLS    = kindRef{api.Group, "MeshTLSAuthentication"}
	netAuthn   = kindRef{api.Group, "NetworkAuthentication"}
	svcAccount = kindRef{coreGroup, "ServiceAccount"}

	policyTargets  = []kindRef{server, namespace, policyHTTP, gwHTTP, gwGRPC}
	authnKinds     = []kindRef{meshTLS, netAuthn, svcAccount}
	identityTarget = []kindRef{svcAccount, namespace}
)

// AuthorizationPolicy checks that the target is a Server, Namespace, HTTPRoute or GRPCRoute,
// and that the required authentications are MeshTLSAuthentications, NetworkAuthentications
// or ServiceAccounts, with at most one mesh identity source (a MeshTLSAuthentication or a
// ServiceAccount) and at most one NetworkAuthentication.
func AuthorizationPolicy(p *api.AuthorizationPolicy) field.ErrorList {
	var errs field.ErrorList
	t := spec.Child("targetRef")
	if _, ok := matchKind(p.Spec.TargetRef.Group, p.Spec.TargetRef.Kind, policyTargets); !ok {
		errs = append(errs, field.NotSupported(t.Child("kind"), kindRef{p.Spec.TargetRef.Group, p.Spec.TargetRef.Kind}.String(), kindNames(policyTargets)))
	}
	errs = append(errs, refName(t, p.Spec.TargetRef)...)
	refs := spec.Child("requiredAuthenticationRefs")
	identities, networks := 0, 0
	for i, r := range p.Spec.RequiredAuthenticationRefs {
		f := refs.Index(i)
		k, ok := matchKind(r.Group, r.Kind, authnKinds)
		if !ok {
			errs = append(errs, field.NotSupported(f.Child("kind"), kindRef{r.Group, r.Kind}.String(), kindNames(authnKinds)))
			continue
		}
		errs = append(errs, refName(f, r)...)
		switch k {
		case meshTLS, svcAccount:
			if identities++; identities > 1 {
				errs = append(errs, field.Invalid(f, k.String(), "only one MeshTLSAuthentication or ServiceAccount may be required"))
			}
		case netAuthn:
			if networks++; networks > 1 {
				errs = append(errs, field.Invalid(f, k.String(), "only one NetworkAuthentication may be required"))
			}
		}
	}
	return errs
}

func kindNames(allowed []kindRef) []string {
	s := make([]string, len(allowed))
	for i, a := range allowed {
		s[i] = a.String()
	}
	return s
}

// refName checks a reference's name and optional namespace.
func refName(f *field.Path, r api.TargetRef) field.ErrorList {
	var errs field.ErrorList
	if r.Name == "" {
		errs = append(errs, field.Required(f.Child("name"), "names the referenced object"))
	} else if msgs := validation.IsDNS1123Subdomain(r.Name); len(msgs) > 0 {
		errs = append(errs, field.Invalid(f.Child("name"), r.Name, strings.Join(msgs, "; ")))
	}
	if r.Namespace != "" {
		if msgs := validation.IsDNS1123Label(r.Namespace); len(msgs) > 0 {
			errs = append(errs, field.Invalid(f.Child("namespace"), r.Namespace, strings.Join(msgs, "; ")))
		}
	}
	return errs
}

// MeshTLSAuthentication checks that identities or identityRefs are given, that every
// identity is "*", "*.<dns suffix>" or a DNS name, and that every reference names a
// ServiceAccount or Namespace.
func MeshTLSAuthentication(m *api.MeshTLSAuthentication) field.ErrorList {
	var errs field.ErrorList
	if len(m.Spec.Identities) == 0 && len(m.Spec.IdentityRefs) == 0 {
		return append(errs, field.Required(spec.Child("identities"), "one of identities or identityRefs must list at least one identity"))
	}
	for i, id := range m.Spec.Identities {
		if err := Identity(id); err != nil {
			errs = append(errs, field.Invalid(spec.Child("identities").Index(i), id, err.Error()))
		}
	}
	for i, r := range m.Spec.IdentityRefs {
		f := spec.Child("identityRefs").Index(i)
		k, ok := matchKind(r.Group, r.Kind, identityTarget)
		if !ok {
			errs = append(errs, field.NotSupported(f.Child("kind"), kindRef{r.Group, r.Kind}.String(), kindNames(identityTarget)))
			continue
		}
		if k == namespace && r.Name != "" {
			if msgs := validation.IsDNS1123Label(r.Name); len(msgs) > 0 {
				errs = append(errs, field.Invalid(f.Child("name"), r.Name, strings.Join(msgs, "; ")))
				continue
			}
		}
		errs = append(errs, refName(f, r)...)
	}
	return errs
}

// Identity checks one MeshTLSAuthentication identity: "*" (any authenticated client),
// "*.<suffix>" (any identity under a DNS suffix) or an exact DNS name.
func Identity(id string) error {
	if id == "*" {
		return nil
	}
	name := id
	if s, ok := strings.CutPrefix(id, "*."); ok {
		name = s
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		if strings.Contains(name, "*") {
			return fmt.Errorf("a wildcard may only be the whole identity (*) or its first label (*.suffix)")
		}
		return fmt.Errorf("not a DNS name: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// ProxyProtocols are the Server proxyProtocol values; empty means unknown (detect).
var ProxyProtocols = []string{"unknown", "HTTP/1", "HTTP/2", "gRPC", "opaque", "TLS"}

// Server checks a Server's port (a number 1-65535 or an IANA_SVC_NAME port name), its
// selector (exactly one of podSelector and externalWorkloadSelector, with valid label
// keys, values and operators), its proxyProtocol and its accessPolicy.
func Server(s *api.Server) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, Port(spec.Child("port"), s.Spec.Port)...)
	sel, ext := spec.Child("podSelector"), spec.Child("externalWorkloadSelector")
	switch {
	case s.Spec.PodSelector == nil && s.Spec.ExternalWorkloadSelector == nil:
		errs = append(errs, field.Required(sel, "selects the pods the Server applies to ({} selects all pods of the namespace)"))
	case s.Spec.PodSelector != nil && s.Spec.ExternalWorkloadSelector != nil:
		errs = append(errs, field.Forbidden(ext, "a Server selects pods or external workloads, not both"))
	case s.Spec.PodSelector != nil:
		errs = append(errs, metavalidation.ValidateLabelSelector(s.Spec.PodSelector, metavalidation.LabelSelectorValidationOptions{}, sel)...)
	default:
		errs = append(errs, metavalidation.ValidateLabelSelector(s.Spec.ExternalWorkloadSelector, metavalidation.LabelSelectorValidationOptions{}, ext)...)
	}
	if p := s.Spec.ProxyProtocol; p != "" && !slices.Contains(ProxyProtocols, p) {
		errs = append(errs, field.NotSupported(spec.Child("proxyProtocol"), p, ProxyProtocols))
	}
	if p := s.Spec.AccessPolicy; p != "" && !slices.Contains(AccessPolicies, p) {
		errs = append(errs, field.NotSupported(spec.Child("accessPolicy"), p, AccessPolicies))
	}
	return errs
}

// AccessPolicies are the Server accessPolicy values (the default inbound policies);
// empty means deny.
var AccessPolicies = []string{"all-unauthenticated", "all-authenticated", "cluster-unauthenticated", "cluster-authenticated", "deny", "audit"}

// Port checks a port given as a number (1-65535) or a container port name (IANA_SVC_NAME).
func Port(f *field.Path, p intstr.IntOrString) field.ErrorList {
	if p.Type == intstr.Int {
		if msgs := validation.IsValidPortNum(int(p.IntVal)); len(msgs) > 0 {
			return field.ErrorList{field.Invalid(f, p.IntVal, strings.Join(msgs, "; "))}
		}
		return nil
	}
	if p.StrVal == "" {
		return field.ErrorList{field.Required(f, "a port number (1-65535) or a container port name")}
	}
	if msgs := validation.IsValidPortName(p.StrVal); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(f, p.StrVal, "neither a port number (1-65535) nor a port name: "+strings.Join(msgs, "; "))}
	}
	return nil
}
