// Package webhook serves the proxy injector's mutating admission webhook: it decodes
// admission.k8s.io/v1 AdmissionReviews for Pods, looks up the pod's namespace and owner,
// runs the inject library and answers with a JSON patch, a refusal naming the bad
// annotation, or an unchanged admission. Every answer is counted in metrics and, for pods
// with an owner, recorded as a Kubernetes Event on it.
//
// Anyone who reaches the webhook port can POST an AdmissionReview, and the API server
// presents no client certificate to webhooks (unless the cluster is configured with an
// admission kubeconfig, which Linkerd installs do not require), so the TLS peer proves
// nothing. Events are therefore written only for what the API server would ask about: not
// for dry runs, not when the namespace does not exist (the review is refused), and only on
// an owner read back from the API server with the UID the pod's controller reference
// names. A caller can still get an Event written on a real owner whose UID it knows; the
// recorder's per-object spam filter bounds those.
package webhook

import (
	"encoding/json"
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
)

// MaxBodyBytes bounds an AdmissionReview body; the API server sends at most 3 MiB objects.
const MaxBodyBytes = 4 << 20

// ErrBadReview marks a request body that is not a usable AdmissionReview.
var ErrBadReview = errors.New("invalid AdmissionReview")

// DecodeReview parses an admission.k8s.io/v1 AdmissionReview carrying a request with a UID.
// Any other input gets an error wrapping ErrBadReview that says what is wrong; it never panics.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrBadReview)
	}
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrBadReview, len(body), MaxBodyBytes)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReview, err)
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("%w: apiVersion %q kind %q, want %s AdmissionReview", ErrBadReview,
			review.APIVersion, review.Kind, admissionv1.SchemeGroupVersion)
	}
	if review.Request == nil {
		return nil, fmt.Errorf("%w: no request", ErrBadReview)
	}
	if review.Request.UID == "" {
		return nil, fmt.Errorf("%w: request without uid", ErrBadReview)
	}
	return &review, nil
}
