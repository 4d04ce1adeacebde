package routes

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/l5d-go/l5d/proto/gen/httproute"
	pb "github.com/l5d-go/l5d/proto/gen/outbound"
)

// Annotation keys read by this package.
const (
	AnnTimeoutRequest  = "timeout.linkerd.io/request"
	AnnTimeoutResponse = "timeout.linkerd.io/response"
	AnnTimeoutIdle     = "timeout.linkerd.io/idle"

	AnnRetryHTTP    = "retry.linkerd.io/http"
	AnnRetryGRPC    = "retry.linkerd.io/grpc"
	AnnRetryLimit   = "retry.linkerd.io/limit"
	AnnRetryTimeout = "retry.linkerd.io/timeout"

	AnnFailureAccrual       = "balancer.linkerd.io/failure-accrual"
	AnnAccrualMaxFailures   = "balancer.linkerd.io/failure-accrual-consecutive-max-failures"
	AnnAccrualMinPenalty    = "balancer.linkerd.io/failure-accrual-consecutive-min-penalty"
	AnnAccrualMaxPenalty    = "balancer.linkerd.io/failure-accrual-consecutive-max-penalty"
	AnnAccrualJitterRatio   = "balancer.linkerd.io/failure-accrual-consecutive-jitter-ratio"
	AnnAccrualJitterPercent = "balancer.linkerd.io/failure-accrual-consecutive-jitter-percent"
)

// MaxRetryRequestBytes is the largest request body the proxy buffers for a retry (64 KiB).
const MaxRetryRequestBytes = 64 * 1024

// ParseDuration parses a GEP-2257 duration ("1h", "1m30s", "250ms"; units h, m, s, ms).
func ParseDuration(s string) (time.Duration, error) {
	if !gepDuration.MatchString(s) {
		return 0, fmt.Errorf("duration %q: want up to 4 groups of 1-5 digits with units h, m, s or ms, e.g. 1m30s or 250ms", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	return d, nil
}

var gepDuration = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

// TimeoutConfig holds request, response and idle timeouts; zero means unset.
type TimeoutConfig struct {
	Request, Response, Idle time.Duration
}

// ParseTimeoutAnnotations reads the timeout.linkerd.io annotations.
func ParseTimeoutAnnotations(ann map[string]string) (TimeoutConfig, error) {
	var t TimeoutConfig
	for key, dst := range map[string]*time.Duration{AnnTimeoutRequest: &t.Request, AnnTimeoutResponse: &t.Response, AnnTimeoutIdle: &t.Idle} {
		if v, ok := ann[key]; ok {
			d, err := ParseDuration(v)
			if err != nil {
				return TimeoutConfig{}, fmt.Errorf("annotation %s: %w", key, err)
			}
			*dst = d
		}
	}
	return t, nil
}

// Or returns t with every unset timeout taken from fallback.
func (t TimeoutConfig) Or(fallback TimeoutConfig) TimeoutConfig {
	if t.Request == 0 {
		t.Request = fallback.Request
	}
	if t.Response == 0 {
		t.Response = fallback.Response
	}
	if t.Idle == 0 {
		t.Idle = fallback.Idle
	}
	return t
}

// Proto is the proxy API form of t, nil when no timeout is set.
func (t TimeoutConfig) Proto() *httproute.Timeouts {
	if t == (TimeoutConfig{}) {
		return nil
	}
	dur := func(d time.Duration) *durationpb.Duration {
		if d == 0 {
			return nil
		}
		return durationpb.New(d)
	}
	return &httproute.Timeouts{Request: dur(t.Request), Response: dur(t.Response), Idle: dur(t.Idle)}
}

// StatusRange is an inclusive range of HTTP statuses.
type StatusRange struct{ Start, End uint32 }

// GRPCCodes are the gRPC statuses a retry may be triggered by.
type GRPCCodes struct {
	Cancelled, DeadlineExceeded, Internal, ResourceExhausted, Unavailable bool
}

// RetryConfig is a parsed set of retry.linkerd.io annotations.
type RetryConfig struct {
	// Set reports whether any retry annotation was present.
	Set bool
	// Limit is the number of retries per request (default 1).
	Limit uint32
	// Timeout bounds each try; zero means none.
	Timeout time.Duration
	// HTTP lists the retried statuses; nil when retry.linkerd.io/http is absent.
	HTTP []StatusRange
	// GRPC lists the retried codes; nil when retry.linkerd.io/grpc is absent.
	GRPC *GRPCCodes
}

// ParseRetryAnnotations reads the retry.linkerd.io annotations.
func ParseRetryAnnotations(ann map[string]string) (RetryConfig, error) {
	r := RetryConfig{Limit: 1}
	if v, ok := ann[AnnRetryLimit]; ok {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return RetryConfig{}, fmt.Errorf("annotation %s: %q is not a non-negative integer", AnnRetryLimit, v)
		}
		r.Set, r.Limit = true, uint32(n)
	}
	if v, ok := ann[AnnRetryTimeout]; ok {
		d, err := ParseDuration(v)
		if err != nil {
			return RetryConfig{}, fmt.Errorf("annotation %s: %w", AnnRetryTimeout, err)
		}
		r.Set, r.Timeout = true, d
	}
	if v, ok := ann[AnnRetryHTTP]; ok {
		rs, err := ParseHTTPRetryConditions(v)
		if err != nil {
			return RetryConfig{}, fmt.Errorf("annotation %s: %w", AnnRetryHTTP, err)
		}
		r.Set, r.HTTP = true, rs
	}
	if v, ok := ann[AnnRetryGRPC]; ok {
		c, err := ParseGRPCRetryConditions(v)
		if err != nil {
			return RetryConfig{}, fmt.Errorf("annotation %s: %w", AnnRetryGRPC, err)
		}
		r.Set, r.GRPC = true, &c
	}
	return r, nil
}

// ParseHTTPRetryConditions parses "5xx", "gateway-error" (502-504), a status ("429") or a
// range ("500-504"), comma-separated.
func ParseHTTPRetryConditions(s string) ([]StatusRange, error) {
	var out []StatusRange
	for _, tok := range strings.Split(s, ",") {
		tok = strings.ToLower(strings.TrimSpace(tok))
		switch tok {
		case "":
			return nil, fmt.Errorf("%q has an empty condition", s)
		case "5xx":
			out = append(out, StatusRange{500, 599})
		case "gateway-error":
			out = append(out, StatusRange{502, 504})
		default:
			lo, hi, isRange := strings.Cut(tok, "-")
			a, err := status(lo)
			if err != nil {
				return nil, fmt.Errorf("condition %q: %w", tok, err)
			}
			b := a
			if isRange {
				if b, err = status(hi); err != nil {
					return nil, fmt.Errorf("condition %q: %w", tok, err)
				}
				if b < a {
					return nil, fmt.Errorf("condition %q: range ends before it starts", tok)
				}
			}
			out = append(out, StatusRange{a, b})
		}
	}
	return out, nil
}

func status(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 100 || n > 599 {
		return 0, fmt.Errorf("%q is not an HTTP status (100-599), 5xx or gateway-error", s)
	}
	return uint32(n), nil
}

// ParseGRPCRetryConditions parses comma-separated gRPC codes: cancelled,
// deadline-exceeded, internal, resource-exhausted, unavailable.
func ParseGRPCRetryConditions(s string) (GRPCCodes, error) {
	var c GRPCCodes
	for _, tok := range strings.Split(s, ",") {
		switch strings.ToLower(strings.TrimSpace(tok)) {
		case "cancelled":
			c.Cancelled = true
		case "deadline-exceeded":
			c.DeadlineExceeded = true
		case "internal":
			c.Internal = true
		case "resource-exhausted":
			c.ResourceExhausted = true
		case "unavailable":
			c.Unavailable = true
		default:
			return GRPCCodes{}, fmt.Errorf("%q is not a retryable gRPC code (want cancelled, deadline-exceeded, internal, resource-exhausted or unavailable)", strings.TrimSpace(tok))
		}
	}
	return c, nil
}

// HTTPProto is the HTTP retry policy, nil when retries are not configured. Without
// retry.linkerd.io/http, 5xx responses are retried.
func (r RetryConfig) HTTPProto() *pb.HttpRoute_Retry {
	if !r.Set {
		return nil
	}
	ranges := r.HTTP
	if ranges == nil {
		ranges = []StatusRange{{500, 599}}
	}
	c := &pb.HttpRoute_Retry_Conditions{}
	for _, sr := range ranges {
		c.StatusRanges = append(c.StatusRanges, &pb.HttpRoute_Retry_Conditions_StatusRange{Start: sr.Start, End: sr.End})
	}
	return &pb.HttpRoute_Retry{MaxRetries: r.Limit, MaxRequestBytes: MaxRetryRequestBytes, Conditions: c, Timeout: optDuration(r.Timeout)}
}

// GRPCProto is the gRPC retry policy, nil when retries are not configured. Without
// retry.linkerd.io/grpc, cancelled, deadline-exceeded, resource-exhausted and unavailable
// are retried.
func (r RetryConfig) GRPCProto() *pb.GrpcRoute_Retry {
	if !r.Set {
		return nil
	}
	codes := GRPCCodes{Cancelled: true, DeadlineExceeded: true, ResourceExhausted: true, Unavailable: true}
	if r.GRPC != nil {
		codes = *r.GRPC
	}
	return &pb.GrpcRoute_Retry{MaxRetries: r.Limit, MaxRequestBytes: MaxRetryRequestBytes, Timeout: optDuration(r.Timeout),
		Conditions: &pb.GrpcRoute_Retry_Conditions{Cancelled: codes.Cancelled, DeadineExceeded: codes.DeadlineExceeded,
			Internal: codes.Internal, ResourceExhausted: codes.ResourceExhausted, Unavailable: codes.Unavailable}}
}

func optDuration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// FailureAccrual parses a Service's balancer.linkerd.io/failure-accrual annotations: nil
// when absent, consecutive-failure accrual when "consecutive" (max failures 7, penalty
// 1s..1m, jitter ratio 0.5 unless annotated), an error for anything else.
func FailureAccrual(ann map[string]string) (*pb.FailureAccrual, error) {
	mode, ok := ann[AnnFailureAccrual]
	if !ok {
		return nil, nil
	}
	if strings.TrimSpace(mode) != "consecutive" {
		return nil, fmt.Errorf("annotation %s: %q is not a failure accrual mode (want consecutive)", AnnFailureAccrual, mode)
	}
	maxFailures, minPenalty, maxPenalty, jitter := uint64(7), time.Second, time.Minute, 0.5
	if v, ok := ann[AnnAccrualMaxFailures]; ok {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("annotation %s: %q is not a positive integer", AnnAccrualMaxFailures, v)
		}
		maxFailures = n
	}
	for key, dst := range map[string]*time.Duration{AnnAccrualMinPenalty: &minPenalty, AnnAccrualMaxPenalty: &maxPenalty} {
		if v, ok := ann[key]; ok {
			d, err := ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf("annotation %s: %w", key, err)
			}
			*dst = d
		}
	}
	if minPenalty > maxPenalty {
		return nil, fmt.Errorf("annotations %s (%s) exceeds %s (%s)", AnnAccrualMinPenalty, minPenalty, AnnAccrualMaxPenalty, maxPenalty)
	}
	if v, ok := ann[AnnAccrualJitterRatio]; ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(f >= 0 && f <= 100) {
			return nil, fmt.Errorf("annotation %s: %q is not a ratio between 0 and 100", AnnAccrualJitterRatio, v)
		}
		jitter = f
	} else if v, ok := ann[AnnAccrualJitterPercent]; ok {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil || n > 100 {
			return nil, fmt.Errorf("annotation %s: %q is not a percentage between 0 and 100", AnnAccrualJitterPercent, v)
		}
		jitter = float64(n) / 100
	}
	return &pb.FailureAccrual{Kind: &pb.FailureAccrual_ConsecutiveFailures_{ConsecutiveFailures: &pb.FailureAccrual_ConsecutiveFailures{
		MaxFailures: uint32(maxFailures),
		Backoff:     &pb.ExponentialBackoff{MinBackoff: durationpb.New(minPenalty), MaxBackoff: durationpb.New(maxPenalty), JitterRatio: float32(jitter)},
	}}}, nil
}
