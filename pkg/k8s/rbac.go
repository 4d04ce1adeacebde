package k8s

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Permission is one RBAC permission a component needs.
type Permission struct {
	// Verb is a Kubernetes API verb: get, list, watch, create, update, patch, delete.
	Verb string
	// Group is the API group; "" for the core group.
	Group string
	// Resource is the plural resource name, optionally with a subresource after a slash
	// (for example "pods" or "serviceaccounts/token").
	Resource string
	// Namespace limits the check to one namespace; "" means all namespaces.
	Namespace string
}

// String names the permission as a person reads it, for example
// "watch endpointslices.discovery.k8s.io in all namespaces".
func (p Permission) String() string {
	res := p.Resource
	if p.Group != "" {
		res += "." + p.Group
	}
	where := "in all namespaces"
	if p.Namespace != "" {
		where = "in namespace " + p.Namespace
	}
	return fmt.Sprintf("%s %s %s", p.Verb, res, where)
}

// CheckPermissions asks the API server, with one SelfSubjectAccessReview per permission,
// whether the client's identity holds each of perms. It returns nil when all are allowed,
// and otherwise an error listing every missing permission, so a component can refuse to
// start with a message that says exactly what its ClusterRole lacks.
func CheckPermissions(ctx context.Context, client kubernetes.Interface, perms []Permission) error {
	var missing []string
	for _, p := range perms {
		resource, sub, _ := strings.Cut(p.Resource, "/")
		review := &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace:   p.Namespace,
					Verb:        p.Verb,
					Group:       p.Group,
					Resource:    resource,
					Subresource: sub,
				},
			},
		}
		resp, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("checking RBAC permission to %s: %w", p, err)
		}
		if !resp.Status.Allowed {
			missing = append(missing, p.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing RBAC permissions: %s", strings.Join(missing, "; "))
	}
	return nil
}
