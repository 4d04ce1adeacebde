package validator

import (
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
)

// ServerAuthorization checks that a ServerAuthorization names its Servers by name or by
// selector (not both), that its clients are either unauthenticated or mesh TLS, that
// unauthenticatedTLS comes without identities or ServiceAccounts, and that its networks
// parse as NetworkAuthentication networks do.
func ServerAuthorization(a *api.ServerAuthorization) field.ErrorList {
	var errs field.ErrorList
	srv := spec.Child("server")
	switch s := a.Spec.Server; {
	case s.Name == "" && s.Selector == nil:
		errs = append(errs, field.Required(srv, "one of name or selector selects the Servers"))
	case s.Name != "" && s.Selector != nil:
		errs = append(errs, field.Invalid(srv.Child("selector"), "", "name and selector are exclusive"))
	case s.Name != "":
		errs = append(errs, refName(srv, api.TargetRef{Name: s.Name})...)
	default:
		errs = append(errs, metavalidation.ValidateLabelSelector(s.Selector, metavalidation.LabelSelectorValidationOptions{}, srv.Child("selector"))...)
	}
	client := spec.Child("client")
	c := a.Spec.Client
	if m := c.MeshTLS; m != nil {
		if c.Unauthenticated {
			errs = append(errs, field.Invalid(client.Child("unauthenticated"), true, "must be false when meshTLS is set"))
		}
		if m.UnauthenticatedTLS && len(m.Identities)+len(m.ServiceAccounts) > 0 {
			errs = append(errs, field.Invalid(client.Child("meshTLS", "unauthenticatedTLS"), true, "must be false when identities or serviceAccounts are set"))
		}
		for i, id := range m.Identities {
			if err := Identity(id); err != nil {
				errs = append(errs, field.Invalid(client.Child("meshTLS", "identities").Index(i), id, err.Error()))
			}
		}
		for i, sa := range m.ServiceAccounts {
			errs = append(errs, refName(client.Child("meshTLS", "serviceAccounts").Index(i), api.TargetRef{Name: sa.Name, Namespace: sa.Namespace})...)
		}
	} else if !c.Unauthenticated {
		errs = append(errs, field.Required(client, "set meshTLS or unauthenticated: true"))
	}
	errs = append(errs, networks(client.Child("networks"), c.Networks)...)
	return errs
}
