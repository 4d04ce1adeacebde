package validator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
)

// maxBody bounds an AdmissionReview; the API server sends objects well under it.
const maxBody = 4 << 20

// validators maps each validated group and kind to a function decoding the object and
// returning its problems.
var validators = map[schema.GroupKind]func(raw []byte) (field.ErrorList, error){
	{Group: api.Group, Kind: "NetworkAuthentication"}: check(NetworkAuthentication),
	{Group: api.Group, Kind: "AuthorizationPolicy"}:   check(AuthorizationPolicy),
	{Group: api.Group, Kind: "MeshTLSAuthentication"}: check(MeshTLSAuthentication),
	{Group: api.Group, Kind: "Server"}:                check(Server),
	{Group: api.Group, Kind: "ServerAuthorization"}:   check(ServerAuthorization),
	{Group: api.Group, Kind: "HTTPRoute"}:             check(LinkerdHTTPRoute),
	{Group: gatewayGroup, Kind: "HTTPRoute"}:          check(GatewayHTTPRoute),
	{Group: gatewayGroup, Kind: "GRPCRoute"}:          check(GatewayGRPCRoute),
}

func check[T any](validate func(*T) field.ErrorList) func([]byte) (field.ErrorList, error) {
	return func(raw []byte) (field.ErrorList, error) {
		var obj T
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, err
		}
		return validate(&obj), nil
	}
}

// Validate checks one object of the given group and kind, as JSON. It returns nil for a
// valid object or a kind this package does not validate, and otherwise an error listing
// every problem, each naming its field.
func Validate(gk schema.GroupKind, raw []byte) error {
	v, ok := validators[gk]
	if !ok {
		return nil
	}
	errs, err := v(raw)
	if err != nil {
		return fmt.Errorf("%s does not decode: %w", gk.Kind, err)
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// Handler serves AdmissionReview (admission.k8s.io/v1, and v1beta1 which has the same
// shape) for the policy resources: the answer allows a valid object and denies an invalid
// one with a message naming every bad field. A body that is not an AdmissionReview with a
// request gets 400 and a message saying so.
type Handler struct {
	Log *slog.Logger
}

// ServeHTTP answers one AdmissionReview.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.Log
	if log == nil {
		log = slog.Default()
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxBody {
		http.Error(w, fmt.Sprintf("AdmissionReview larger than %d bytes", maxBody), http.StatusRequestEntityTooLarge)
		return
	}
	review, err := decodeReview(body)
	if err != nil {
		log.Warn("malformed AdmissionReview", "error", err)
		http.Error(w, "malformed AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	req := review.Request
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	gk := schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
	if req.Operation == admissionv1.Create || req.Operation == admissionv1.Update || req.Operation == "" {
		if err := Validate(gk, req.Object.Raw); err != nil {
			resp.Allowed = false
			resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity, Reason: metav1.StatusReasonInvalid,
				Message: fmt.Sprintf("%s %s is invalid: %v", gk.Kind, req.Name, err)}
			log.Info("refused", "kind", gk.Kind, "namespace", req.Namespace, "name", req.Name, "reason", err)
		}
	}
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&out); err != nil {
		log.Warn("writing the AdmissionReview answer", "error", err)
	}
}

// decodeReview parses an AdmissionReview and checks that it carries a request with an
// identifier and the kind of its object.
func decodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("not JSON of admission.k8s.io/v1 AdmissionReview: %w", err)
	}
	switch review.APIVersion {
	case "":
		review.APIVersion = admissionv1.SchemeGroupVersion.String()
	case "admission.k8s.io/v1", "admission.k8s.io/v1beta1":
	default:
		return nil, fmt.Errorf("apiVersion %q: want admission.k8s.io/v1 or v1beta1", review.APIVersion)
	}
	review.Kind = "AdmissionReview"
	switch {
	case review.Request == nil:
		return nil, fmt.Errorf("no request")
	case review.Request.UID == "":
		return nil, fmt.Errorf("request.uid is empty")
	case review.Request.Kind.Kind == "":
		return nil, fmt.Errorf("request.kind is empty")
	}
	return &review, nil
}
