package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Review answers one decoded admission request; the Handler sets the answer's UID. A
// mutating webhook returns a patch, a validating one Allowed or Denied.
type Review func(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse

// ObjectReview is a Review that also gets the request's object as the Handler decoded it
// (NewObject's value), or nil when the object is null or does not fit that value: the
// request's Object.Raw then holds it, as for a Review (and is empty otherwise).
type ObjectReview func(ctx context.Context, req *admissionv1.AdmissionRequest, object any) *admissionv1.AdmissionResponse

// Handler is the HTTP side of a webhook: it decodes the AdmissionReview POSTed to it, calls
// Review with a context bounded by Timeout (5s when zero) and writes the answer. Review is
// required unless ObjectReview is set; Metrics, when set, counts requests, bad requests and
// latency; Log defaults to slog.Default.
//
// A webhook that decodes the request's object sets NewObject and ObjectReview instead of
// Review: NewObject returns, for each review, a pointer the object is decoded into in the
// same pass over the body as the review (DecodeReviewInto), rather than copied as raw JSON
// and decoded again by the webhook. A review whose object does not fit is decoded again
// as for Review, so that the webhook answers it as it answers an object it cannot decode.
type Handler struct {
	Review       Review
	NewObject    func() any
	ObjectReview ObjectReview
	Metrics      *Metrics
	Timeout      time.Duration
	Log          *slog.Logger
}

// ServeHTTP answers one AdmissionReview, or a malformed body with 400 (413 when too large,
// 405 for a method other than POST) and a message naming the problem.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	log := h.Log
	if log == nil {
		log = slog.Default()
	}
	m := h.Metrics
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "AdmissionReviews are POSTed", http.StatusMethodNotAllowed)
		return
	}
	body := getBuffer()
	if n := r.ContentLength; n > 0 && n <= MaxBodyBytes {
		body.Grow(int(n) + bytes.MinRead) // read at once, EOF included
	}
	_, err := body.ReadFrom(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err == nil {
		var rev *admissionv1.AdmissionReview
		var object any
		rev, object, err = h.decode(body.Bytes()) // what they keep they copy
		releaseBuffer(body)
		if err == nil {
			h.answer(w, r, rev, object, log)
			if m != nil {
				m.Latency.Observe(time.Since(start).Seconds())
			}
			return
		}
	} else {
		releaseBuffer(body)
		err = errors.Join(ErrBadReview, err)
	}
	if m != nil {
		m.BadRequests.Inc()
	}
	log.Warn("rejecting malformed admission request", "remote", r.RemoteAddr, "err", err)
	code := http.StatusBadRequest
	if errors.Is(err, ErrTooLarge) {
		code = http.StatusRequestEntityTooLarge
	}
	http.Error(w, err.Error(), code)
}

// decode decodes a review, with its object when the webhook reads it as a Go value
// (NewObject); object is nil otherwise.
func (h *Handler) decode(body []byte) (rev *admissionv1.AdmissionReview, object any, err error) {
	if h.NewObject == nil || h.ObjectReview == nil {
		rev, err = DecodeReview(body)
		return rev, nil, err
	}
	object = h.NewObject()
	rev, decoded, err := DecodeReviewInto(body, object)
	if err == nil && decoded {
		return rev, object, nil
	}
	// A null object, or a malformed review or object: decoded again with the object as
	// raw JSON, the review is refused as DecodeReview refuses it, or the webhook gets the
	// object to refuse.
	rev, err = DecodeReview(body)
	return rev, nil, err
}

func (h *Handler) answer(w http.ResponseWriter, r *http.Request, rev *admissionv1.AdmissionReview, object any, log *slog.Logger) {
	if h.Metrics != nil {
		h.Metrics.Requests.Inc()
	}
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	var resp *admissionv1.AdmissionResponse
	if h.ObjectReview != nil {
		resp = h.ObjectReview(ctx, rev.Request, object)
	} else {
		resp = h.Review(ctx, rev.Request)
	}
	if resp == nil {
		resp = Denied(http.StatusInternalServerError, "the webhook gave no answer")
	}
	resp.UID = rev.Request.UID
	out, err := encodePooled(&admissionv1.AdmissionReview{TypeMeta: rev.TypeMeta, Response: resp})
	if err != nil {
		log.Error("encoding admission response", "err", err)
		http.Error(w, "encoding response", http.StatusInternalServerError)
		return
	}
	defer releaseBuffer(out)
	// With its length known, the response goes out as one body rather than in chunks.
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(out.Len()))
	_, _ = w.Write(out.Bytes())
}

// Allowed admits the object unchanged.
func Allowed() *admissionv1.AdmissionResponse { return &admissionv1.AdmissionResponse{Allowed: true} }

// Denied refuses the object with an HTTP status code and a message the API server shows the
// user (kubectl prints it after "denied the request:").
func Denied(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: code, Message: msg, Reason: metav1.StatusReason(http.StatusText(int(code))),
	}}
}

// Patched admits the object with a JSON patch.
func Patched(patch []byte) *admissionv1.AdmissionResponse {
	pt := admissionv1.PatchTypeJSONPatch
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt}
}
