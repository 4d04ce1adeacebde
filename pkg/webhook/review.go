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
	"reflect"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	if err := checkSize(body); err != nil {
		return nil, err
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReview, err)
	}
	if err := checkReview(review.TypeMeta, review.Request); err != nil {
		return nil, err
	}
	return &review, nil
}

// DecodeReviewInto is DecodeReview for a webhook that reads the request's object as a Go
// value: the object is decoded into object (a non-nil pointer, such as a view of the
// fields the webhook reads) in the same pass over the body, rather than copied as raw JSON
// and decoded again, so the request's Object.Raw is empty. It decodes with the JSON v2
// prototype (github.com/go-json-experiment/json) set to encoding/json's semantics
// (v1Semantics): one pass that validates as it goes, where encoding/json validates the
// whole body before it decodes, and skips what the value does not hold without
// allocating. It reports whether the object
// was decoded (false when it is null or absent). An object that does not fit object gets
// an error wrapping ErrBadReview, as a malformed review does, and so does a request with
// nothing but its object ("no request").
func DecodeReviewInto(body []byte, object any) (*admissionv1.AdmissionReview, bool, error) {
	if err := checkSize(body); err != nil {
		return nil, false, err
	}
	// The request's "object" member is object: a field of requestInto, shallower than the
	// embedded AdmissionRequest's, takes the member (encoding/json's rule for embedded
	// fields), and an interface holding a pointer is decoded into what it points to.
	type requestInto struct {
		admissionv1.AdmissionRequest
		Object any `json:"object"`
	}
	var review struct {
		metav1.TypeMeta `json:",inline"`
		Request         *requestInto `json:"request"`
	}
	req := &requestInto{Object: object}
	review.Request = req
	if err := jsonv2.Unmarshal(body, &review, v1Semantics); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrBadReview, err)
	}
	// An absent request leaves req as it was: empty, as no request the API server sends is.
	var request *admissionv1.AdmissionRequest
	if review.Request != nil && !reflect.ValueOf(review.Request.AdmissionRequest).IsZero() {
		request = &review.Request.AdmissionRequest
	}
	if err := checkReview(review.TypeMeta, request); err != nil {
		return nil, false, err
	}
	return &admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Request: request}, req.Object != nil, nil
}

// v1Semantics makes the JSON v2 prototype decode as encoding/json does (names matched
// case-insensitively, duplicate names merged, invalid UTF-8 replaced, and the like), but
// for its errors: a body is not validated whole before it is decoded, and decoding stops
// at the first error. DecodeReviewInto's errors then say less than DecodeReview's, but it
// refuses the same bodies (FuzzDecodeReviewInto), and Handler decodes a body it refuses
// again with DecodeReview, whose error it answers.
var v1Semantics = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv1.ReportErrorsWithLegacySemantics(false))

func checkSize(body []byte) error {
	if len(body) == 0 {
		return fmt.Errorf("%w: empty body", ErrBadReview)
	}
	if len(body) > MaxBodyBytes {
		return fmt.Errorf("%w (%d bytes)", ErrTooLarge, len(body))
	}
	return nil
}

// checkReview checks what DecodeReview promises of a decoded review.
func checkReview(tm metav1.TypeMeta, req *admissionv1.AdmissionRequest) error {
	switch {
	case tm.Kind != "AdmissionReview" ||
		tm.APIVersion != admissionv1.SchemeGroupVersion.String() && tm.APIVersion != admissionv1beta1.SchemeGroupVersion.String():
		return fmt.Errorf("%w: apiVersion %q kind %q, want %s AdmissionReview (or %s)", ErrBadReview,
			tm.APIVersion, tm.Kind, admissionv1.SchemeGroupVersion, admissionv1beta1.SchemeGroupVersion)
	case req == nil:
		return fmt.Errorf("%w: no request", ErrBadReview)
	case req.UID == "":
		return fmt.Errorf("%w: request without uid", ErrBadReview)
	case req.Kind.Kind == "":
		return fmt.Errorf("%w: request without the kind of its object", ErrBadReview)
	}
	return nil
}
