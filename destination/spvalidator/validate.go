// Package spvalidator is the linkerd-sp-validator admission webhook: it refuses
// ServiceProfiles that cannot work (a name that is not a Service FQDN, invalid regexes,
// methods, status ranges, timeouts, retry budgets or traffic overrides), naming the field.
package spvalidator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	sp "github.com/l5d-go/l5d/pkg/apis/serviceprofile"
	"github.com/l5d-go/l5d/pkg/webhook"
)

// Validate checks a ServiceProfile for a cluster whose domain is clusterDomain and
// returns every problem found, each naming its field.
func Validate(p *sp.ServiceProfile, clusterDomain string) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	suffix := "." + p.Namespace + ".svc." + clusterDomain
	if svc, ok := strings.CutSuffix(p.Name, suffix); !ok || svc == "" || strings.Contains(svc, ".") {
		bad("metadata.name", "%q must be the fully qualified name of a Service in its namespace, <service>%s", p.Name, suffix)
	}
	names := map[string]bool{}
	for i, r := range p.Spec.Routes {
		f := fmt.Sprintf("spec.routes[%d]", i)
		if r.Name == "" {
			bad(f+".name", "must not be empty")
		} else if names[r.Name] {
			bad(f+".name", "%q is used by another route", r.Name)
		}
		names[r.Name] = true
		if r.Condition == nil {
			bad(f+".condition", "is required")
		} else {
			validateRequest(r.Condition, f+".condition", bad)
		}
		for j, rc := range r.ResponseClasses {
			g := fmt.Sprintf("%s.responseClasses[%d].condition", f, j)
			if rc == nil || rc.Condition == nil {
				bad(g, "is required")
				continue
			}
			validateResponse(rc.Condition, g, bad)
		}
		if r.Timeout != "" {
			if d, err := time.ParseDuration(r.Timeout); err != nil || d <= 0 {
				bad(f+".timeout", "%q is not a positive duration such as 300ms", r.Timeout)
			}
		}
	}
	if b := p.Spec.RetryBudget; b != nil {
		if b.RetryRatio < 0 {
			bad("spec.retryBudget.retryRatio", "%v must not be negative", b.RetryRatio)
		}
		if d, err := time.ParseDuration(b.TTL); err != nil || d <= 0 {
			bad("spec.retryBudget.ttl", "%q is not a positive duration such as 10s", b.TTL)
		}
	}
	for i, d := range p.Spec.DstOverrides {
		f := fmt.Sprintf("spec.dstOverrides[%d]", i)
		if d == nil || d.Authority == "" {
			bad(f+".authority", "must not be empty")
			continue
		}
		if d.Weight.Sign() < 0 {
			bad(f+".weight", "must not be negative")
		}
	}
	return errors.Join(errs...)
}

var methods = map[string]bool{"GET": true, "POST": true, "PUT": true, "DELETE": true, "PATCH": true, "OPTIONS": true, "CONNECT": true, "HEAD": true, "TRACE": true}

func validateRequest(m *sp.RequestMatch, f string, bad func(string, string, ...any)) {
	set := 0
	for _, b := range []bool{len(m.All) > 0, len(m.Any) > 0, m.Not != nil, m.PathRegex != "", m.Method != ""} {
		if b {
			set++
		}
	}
	if set == 0 {
		bad(f, "must set at least one of all, any, not, pathRegex, method")
	}
	if m.PathRegex != "" {
		if _, err := regexp.Compile(m.PathRegex); err != nil {
			bad(f+".pathRegex", "%q is not a regular expression: %v", m.PathRegex, err)
		}
	}
	if m.Method != "" && !methods[strings.ToUpper(m.Method)] && !token(m.Method) {
		bad(f+".method", "%q is not an HTTP method", m.Method)
	}
	for i, x := range m.All {
		validateRequest(x, fmt.Sprintf("%s.all[%d]", f, i), bad)
	}
	for i, x := range m.Any {
		validateRequest(x, fmt.Sprintf("%s.any[%d]", f, i), bad)
	}
	if m.Not != nil {
		validateRequest(m.Not, f+".not", bad)
	}
}

func validateResponse(m *sp.ResponseMatch, f string, bad func(string, string, ...any)) {
	set := 0
	for _, b := range []bool{len(m.All) > 0, len(m.Any) > 0, m.Not != nil, m.Status != nil} {
		if b {
			set++
		}
	}
	if set == 0 {
		bad(f, "must set at least one of all, any, not, status")
	}
	if s := m.Status; s != nil {
		if (s.Min != 0 && (s.Min < 100 || s.Min > 599)) || (s.Max != 0 && (s.Max < 100 || s.Max > 599)) || (s.Max != 0 && s.Min > s.Max) {
			bad(f+".status", "range %d-%d is not within 100-599 with min <= max", s.Min, s.Max)
		}
	}
	for i, x := range m.All {
		validateResponse(x, fmt.Sprintf("%s.all[%d]", f, i), bad)
	}
	for i, x := range m.Any {
		validateResponse(x, fmt.Sprintf("%s.any[%d]", f, i), bad)
	}
	if m.Not != nil {
		validateResponse(m.Not, f+".not", bad)
	}
}

func token(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// Handler serves AdmissionReviews of ServiceProfiles through pkg/webhook: a valid profile
// is allowed, an invalid one denied naming every bad field; a malformed body gets 400.
type Handler struct {
	ClusterDomain string
	Log           *slog.Logger
	// Metrics, when set, counts reviews; Responses by result (allowed, denied) and reason.
	Metrics *webhook.Metrics
}

// ServeHTTP answers one AdmissionReview.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(&webhook.Handler{Review: h.Review, Metrics: h.Metrics, Log: h.Log}).ServeHTTP(w, r)
}

// Review validates the ServiceProfile in req; a profile without a namespace takes the
// request's.
func (h *Handler) Review(_ context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	var p sp.ServiceProfile
	if err := json.Unmarshal(req.Object.Raw, &p); err != nil {
		h.count("denied", "decode")
		return webhook.Denied(http.StatusBadRequest, "ServiceProfile does not decode: "+err.Error())
	}
	if p.Namespace == "" {
		p.Namespace = req.Namespace
	}
	if err := Validate(&p, h.ClusterDomain); err != nil {
		h.count("denied", "invalid")
		return webhook.Denied(http.StatusUnprocessableEntity, "ServiceProfile "+p.Name+" is invalid: "+strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	h.count("allowed", "valid")
	return webhook.Allowed()
}

func (h *Handler) count(result, reason string) {
	if h.Metrics != nil {
		h.Metrics.Responses.WithLabelValues(result, reason).Inc()
	}
}
