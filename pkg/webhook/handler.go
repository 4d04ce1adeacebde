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

// Handler is the HTTP side of a webhook: it decodes the AdmissionReview POSTed to it, calls
// Review with a context bounded by Timeout (5s when zero) and writes the answer. Review is
// required; Metrics, when set, counts requests, bad requests and latency; Log defaults to
// slog.Default.
type Handler struct {
	Review  Review
	Metrics *Metrics
	Timeout time.Duration
	Log     *slog.Logger
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
		rev, err = DecodeReview(body.Bytes()) // what it keeps it copies
		releaseBuffer(body)
		if err == nil {
			h.answer(w, r, rev, log)
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

func (h *Handler) answer(w http.ResponseWriter, r *http.Request, rev *admissionv1.AdmissionReview, log *slog.Logger) {
	if h.Metrics != nil {
		h.Metrics.Requests.Inc()
	}
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	resp := h.Review(ctx, rev.Request)
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
