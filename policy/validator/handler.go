package validator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	api "github.com/l5d-go/l5d/pkg/apis/policy"
	"github.com/l5d-go/l5d/pkg/webhook"
)

// validators maps each validated group and kind to a function decoding the object and
// returning its problems.
var validators = map[schema.GroupKind]func(raw []byte) (field.ErrorList, error){
	{Group: api.Group, Kind: "NetworkAuthentication"}:    check(NetworkAuthentication),
	{Group: api.Group, Kind: "AuthorizationPolicy"}:      check(AuthorizationPolicy),
	{Group: api.Group, Kind: "MeshTLSAuthentication"}:    check(MeshTLSAuthentication),
	{Group: api.Group, Kind: "Server"}:                   check(Server),
	{Group: api.Group, Kind: "ServerAuthorization"}:      check(ServerAuthorization),
	{Group: api.Group, Kind: "HTTPRoute"}:                check(LinkerdHTTPRoute),
	{Group: api.Group, Kind: "HTTPLocalRateLimitPolicy"}: check(HTTPLocalRateLimitPolicy),
	{Group: api.Group, Kind: "EgressNetwork"}:            check(EgressNetwork),
	{Group: gatewayGroup, Kind: "HTTPRoute"}:             check(GatewayHTTPRoute),
	{Group: gatewayGroup, Kind: "GRPCRoute"}:             check(GatewayGRPCRoute),
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
// shape) for the policy resources through pkg/webhook: the answer allows a valid object and
// denies an invalid one with a message naming every bad field. A body that is not an
// AdmissionReview with a request gets 400 and a message saying so.
type Handler struct {
	Log *slog.Logger
	// Metrics, when set, counts reviews; Responses by result (allowed, denied) and the kind.
	Metrics *webhook.Metrics
}

// ServeHTTP answers one AdmissionReview.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(&webhook.Handler{Review: h.Review, Metrics: h.Metrics, Log: h.Log}).ServeHTTP(w, r)
}

// Review validates the object of a CREATE or UPDATE; other operations are allowed.
func (h *Handler) Review(_ context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	gk := schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
	if req.Operation == admissionv1.Create || req.Operation == admissionv1.Update || req.Operation == "" {
		if err := Validate(gk, req.Object.Raw); err != nil {
			h.count("denied", gk.Kind)
			log := h.Log
			if log == nil {
				log = slog.Default()
			}
			log.Info("refused", "kind", gk.Kind, "namespace", req.Namespace, "name", req.Name, "reason", err)
			resp := webhook.Denied(http.StatusUnprocessableEntity, fmt.Sprintf("%s %s is invalid: %v", gk.Kind, req.Name, err))
			resp.Result.Reason = metav1.StatusReasonInvalid
			return resp
		}
	}
	h.count("allowed", gk.Kind)
	return webhook.Allowed()
}

func (h *Handler) count(result, kind string) {
	if h.Metrics != nil {
		h.Metrics.Responses.WithLabelValues(result, kind).Inc()
	}
}
