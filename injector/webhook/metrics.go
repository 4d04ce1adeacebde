package webhook

import pkgwebhook "github.com/l5d-go/l5d/pkg/webhook"

// Result label values of Metrics.Responses.
const (
	ResultInjected = "injected"
	ResultSkipped  = "skipped"
	ResultRefused  = "refused"
	ResultError    = "error"
)

// Metrics counts admission traffic (pkg/webhook's metrics). Responses carries result
// (injected, skipped, refused, error) and reason (an inject.Reason, "annotation" or a
// decode/lookup cause).
type Metrics = pkgwebhook.Metrics

// NewMetrics builds the injector's metrics, named proxy_inject_admission_*; register them
// with Register.
func NewMetrics() *Metrics { return pkgwebhook.NewMetrics("proxy_inject") }
