package validator

import (
	"fmt"
	"math"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
)

var rateLimitClients = []kindRef{svcAccount}

// HTTPLocalRateLimitPolicy checks that the target is a Server, that every rate is a
// positive number of requests per second that fits the proxy API (32 bits), that the
// identity limit and each override are at most the total limit when one is set, and that
// overrides name ServiceAccounts.
func HTTPLocalRateLimitPolicy(p *api.HTTPLocalRateLimitPolicy) field.ErrorList {
	var errs field.ErrorList
	t := spec.Child("targetRef")
	if _, ok := matchKind(p.Spec.TargetRef.Group, p.Spec.TargetRef.Kind, []kindRef{server}); !ok {
		errs = append(errs, field.NotSupported(t.Child("kind"), kindRef{p.Spec.TargetRef.Group, p.Spec.TargetRef.Kind}.String(), kindNames([]kindRef{server})))
	}
	errs = append(errs, refName(t, p.Spec.TargetRef)...)
	var total int64
	if p.Spec.Total != nil {
		total = p.Spec.Total.RequestsPerSecond
		errs = append(errs, rate(spec.Child("total", "requestsPerSecond"), total, 0)...)
	}
	if p.Spec.Identity != nil {
		errs = append(errs, rate(spec.Child("identity", "requestsPerSecond"), p.Spec.Identity.RequestsPerSecond, total)...)
	}
	for i, o := range p.Spec.Overrides {
		f := spec.Child("overrides").Index(i)
		errs = append(errs, rate(f.Child("requestsPerSecond"), o.RequestsPerSecond, total)...)
		if len(o.ClientRefs) == 0 {
			errs = append(errs, field.Required(f.Child("clientRefs"), "an override names at least one client"))
		}
		for j, r := range o.ClientRefs {
			g := f.Child("clientRefs").Index(j)
			if _, ok := matchKind(r.Group, r.Kind, rateLimitClients); !ok {
				errs = append(errs, field.NotSupported(g.Child("kind"), kindRef{r.Group, r.Kind}.String(), kindNames(rateLimitClients)))
				continue
			}
			errs = append(errs, refName(g, r)...)
		}
	}
	return errs
}

// rate checks one requestsPerSecond: at least 1, at most 2^32-1, and at most total when
// total is positive.
func rate(f *field.Path, rps, total int64) field.ErrorList {
	switch {
	case rps < 1:
		return field.ErrorList{field.Invalid(f, rps, "must be at least 1 request per second")}
	case rps > math.MaxUint32:
		return field.ErrorList{field.Invalid(f, rps, fmt.Sprintf("must be at most %d", uint32(math.MaxUint32)))}
	case total > 0 && rps > total:
		return field.ErrorList{field.Invalid(f, rps, fmt.Sprintf("must not exceed the total limit (%d)", total))}
	}
	return nil
}

// EgressTrafficPolicies are the EgressNetwork trafficPolicy values.
var EgressTrafficPolicies = []string{api.TrafficPolicyAllow, api.TrafficPolicyDeny}

// EgressNetwork checks the trafficPolicy (Allow or Deny) and that its networks parse as
// NetworkAuthentication networks do.
func EgressNetwork(n *api.EgressNetwork) field.ErrorList {
	var errs field.ErrorList
	if !slices.Contains(EgressTrafficPolicies, n.Spec.TrafficPolicy) {
		errs = append(errs, field.NotSupported(spec.Child("trafficPolicy"), n.Spec.TrafficPolicy, EgressTrafficPolicies))
	}
	return append(errs, networks(spec.Child("networks"), n.Spec.Networks)...)
}
