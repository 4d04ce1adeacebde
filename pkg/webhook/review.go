// Package webhook is the one admission webhook server of the control plane (the proxy
// injector, the tap injector, and the policy and ServiceProfile validators): it serves HTTPS
// with a certificate reloaded from its files (see pkg/servingcert), decodes and checks
// admission.k8s.io AdmissionReviews once, counts them in Prometheus metrics, and hands the
// typed request to a mutating or validating Review function, whose answer it writes back
// with the request's UID and the review's apiVersion.
//
// A body that is not an AdmissionReview gets HTTP 400 naming the problem (413 when it is
// larger than MaxBodyBytes, 405 for a method other than POST); the API server never sends
// such bodies, so these are logged as warnings.
package webhook

import (
	"encoding/json"
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
)

// MaxBodyBytes bounds an AdmissionReview body; the API server sends at most 3 MiB objects.
const MaxBodyBytes = 4 << 20

// ErrBadReview marks a request body that is not a usable AdmissionReview.
var ErrBadReview = errors.New("invalid AdmissionReview")

// ErrTooLarge marks a body larger than MaxBodyBytes; it wraps ErrBadReview.
var ErrTooLarge = fmt.Errorf("%w: body larger than %d bytes", ErrBadReview, MaxBodyBytes)

// DecodeReview parses an AdmissionReview of admission.k8s.io/v1 or v1beta1 (the two have
// the same shape; webhook configurations may offer both) carrying a request with a UID and
// the kind of its object. Any other input gets an error wrapping ErrBadReview that says what
// is wrong; it never panics.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrBadReview)
	}
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, len(body))
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReview, err)
	}
	switch {
	case review.Kind != "AdmissionReview" ||
		review.APIVersion != admissionv1.SchemeGroupVersion.String() && review.APIVersion != admissionv1beta1.SchemeGroupVersion.String():
		return nil, fmt.Errorf("%w: apiVersion %q kind %q, want %s AdmissionReview (or %s)", ErrBadReview,
			review.APIVersion, review.Kind, admissionv1.SchemeGroupVersion, admissionv1beta1.SchemeGroupVersion)
	case review.Request == nil:
		return nil, fmt.Errorf("%w: no request", ErrBadReview)
	case review.Request.UID == "":
		return nil, fmt.Errorf("%w: request without uid", ErrBadReview)
	case review.Request.Kind.Kind == "":
		return nil, fmt.Errorf("%w: request without the kind of its object", ErrBadReview)
	}
	return &review, nil
}
