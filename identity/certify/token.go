package certify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxTokenSize bounds the token of a Certify request, in bytes. A projected
// ServiceAccount token is about 1 KiB (its claims name one pod, node and account and its
// audiences); a longer token is refused without a TokenReview, and the cost of reading
// the claims of one that is not stays small (BenchmarkCheckTokenClaims).
const MaxTokenSize = 16 << 10

// TokenExpiryLeeway is how long after its own exp claim a token is still sent for review:
// the API server's ServiceAccount authenticator allows a minute of leeway, and its clock
// and ours may differ by up to the clock-skew allowance, which is added to it.
const TokenExpiryLeeway = time.Minute

// Refusal reasons of tokens refused by their structure or claims, before any TokenReview.
const (
	// ReasonMalformedToken: not a signed JWT with JSON header and claims, or too large.
	ReasonMalformedToken = "malformed_token"
	// ReasonExpiredToken: the token's own exp claim is in the past.
	ReasonExpiredToken = "expired_token"
	// ReasonTokenForOtherIdentity: a ServiceAccount token whose claims name another
	// ServiceAccount than the requested identity's.
	ReasonTokenForOtherIdentity = "token_for_other_identity"
)

const saUserPrefix = "system:serviceaccount:"

// errTokenClaims is a token refused by its claims; reason says which check failed.
type errTokenClaims struct {
	reason string
	err    error
}

func (e *errTokenClaims) Error() string { return e.err.Error() }

// CheckTokenClaims checks, without verifying its signature and without an API call,
// whether token could be a valid token for the ServiceAccount ns/sa at time now, so that
// tokens that cannot be are refused without spending a TokenReview slot:
//
//   - it is a compact JWT of at most MaxTokenSize bytes: three base64url parts, a JSON
//     object header naming an algorithm other than "none", a JSON object of claims and
//     a non-empty signature (the API server authenticates only signed JWTs as
//     ServiceAccounts);
//   - its exp claim, when present (legacy Secret-based tokens have none), is a number no
//     earlier than now - leeway;
//   - when it is a Kubernetes ServiceAccount token, every claim naming its account (sub
//     "system:serviceaccount:<ns>:<sa>", the "kubernetes.io" namespace and
//     serviceaccount.name of bound tokens, the legacy "kubernetes.io/serviceaccount/..."
//     claims) names ns/sa. A JWT without such claims (another authenticator's) is
//     left to the TokenReview, as are audiences (see TokenAudiences).
//
// It returns nil or an error saying which check failed, with the refusal reason (one of
// the Reason constants above). A nil error proves nothing: only the TokenReview does.
func CheckTokenClaims(token, ns, sa string, now time.Time, leeway time.Duration) (reason string, err error) {
	if err := checkTokenClaims(token, ns, sa, now, leeway); err != nil {
		var e *errTokenClaims
		if errors.As(err, &e) {
			return e.reason, err
		}
		return ReasonMalformedToken, err
	}
	return "", nil
}

func checkTokenClaims(token, ns, sa string, now time.Time, leeway time.Duration) error {
	malformed := func(format string, args ...any) error {
		return &errTokenClaims{ReasonMalformedToken, fmt.Errorf(format, args...)}
	}
	if len(token) > MaxTokenSize {
		return malformed("token of %d bytes, more than the %d a ServiceAccount token may have", len(token), MaxTokenSize)
	}
	header, rest, ok1 := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return malformed("token is not a JWT (three base64url parts separated by dots)")
	}
	var h struct {
		Alg *string `json:"alg"`
	}
	if err := decodeJWTPart(header, &h); err != nil {
		return malformed("token header: %v", err)
	}
	if h.Alg == nil || *h.Alg == "" {
		return malformed("token header names no alg")
	}
	if s, err := jwtBase64(sig); err != nil || len(s) == 0 || strings.EqualFold(*h.Alg, "none") {
		return malformed("token has no signature (alg %q)", trunc(*h.Alg))
	}
	var c struct {
		Exp      json.RawMessage `json:"exp"`
		Sub      json.RawMessage `json:"sub"`
		Kube     json.RawMessage `json:"kubernetes.io"`
		LegacyNS json.RawMessage `json:"kubernetes.io/serviceaccount/namespace"`
		LegacySA json.RawMessage `json:"kubernetes.io/serviceaccount/service-account.name"`
	}
	if err := decodeJWTPart(payload, &c); err != nil {
		return malformed("token claims: %v", err)
	}
	if present(c.Exp) {
		var exp float64
		if err := json.Unmarshal(c.Exp, &exp); err != nil {
			return malformed("token exp claim %s is not a number", trunc(string(c.Exp)))
		}
		// Clamped to about ±35000 years, so that the conversion is defined.
		if at := time.Unix(int64(max(min(exp, 1<<40), -(1<<40))), 0); now.After(at.Add(leeway)) {
			return &errTokenClaims{ReasonExpiredToken, fmt.Errorf("token expired at %s by its own exp claim", at.UTC().Format(time.RFC3339))}
		}
	}
	other := func(claim, gotNS, gotSA string) error {
		return &errTokenClaims{ReasonTokenForOtherIdentity, fmt.Errorf("token claims ServiceAccount %q (%s), not %q of the requested identity",
			trunc(saUserPrefix+gotNS+":"+gotSA), claim, saUserPrefix+ns+":"+sa)}
	}
	str := func(name string, raw json.RawMessage) (string, error) {
		var s string
		if !present(raw) {
			return "", malformed("token has no %s claim", name)
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", malformed("token %s claim is not a string", name)
		}
		return s, nil
	}
	if present(c.Sub) {
		sub, err := str("sub", c.Sub)
		if err != nil {
			return err
		}
		if rest, ok := strings.CutPrefix(sub, saUserPrefix); ok {
			gotNS, gotSA, _ := strings.Cut(rest, ":")
			if gotNS != ns || gotSA != sa {
				return other("sub", gotNS, gotSA)
			}
		}
	}
	if present(c.Kube) {
		var k struct {
			Namespace      string `json:"namespace"`
			ServiceAccount struct {
				Name string `json:"name"`
			} `json:"serviceaccount"`
		}
		if err := json.Unmarshal(c.Kube, &k); err != nil {
			return malformed("token kubernetes.io claim: %v", err)
		}
		if k.Namespace != ns || k.ServiceAccount.Name != sa {
			return other("kubernetes.io claim", k.Namespace, k.ServiceAccount.Name)
		}
	}
	if present(c.LegacyNS) || present(c.LegacySA) {
		gotNS, err := str("kubernetes.io/serviceaccount/namespace", c.LegacyNS)
		if err != nil {
			return err
		}
		gotSA, err := str("kubernetes.io/serviceaccount/service-account.name", c.LegacySA)
		if err != nil {
			return err
		}
		if gotNS != ns || gotSA != sa {
			return other("kubernetes.io/serviceaccount claims", gotNS, gotSA)
		}
	}
	return nil
}

// present reports whether a claim was given a value other than null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// jwtBase64 decodes a JWT part: base64url, padding tolerated as the API server's JOSE
// library tolerates it.
func jwtBase64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// decodeJWTPart decodes a base64url JSON object into v.
func decodeJWTPart(part string, v any) error {
	b, err := jwtBase64(part)
	if err != nil {
		return fmt.Errorf("not base64url: %w", err)
	}
	if b = bytes.TrimSpace(b); len(b) == 0 || b[0] != '{' {
		return errors.New("not a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	return nil
}
