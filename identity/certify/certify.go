// Package certify implements io.linkerd.proxy.identity.Identity/Certify: it checks a
// proxy's ServiceAccount token with a Kubernetes TokenReview, checks that the token's
// account owns the requested identity and that the DER CSR asks for exactly that name
// with an acceptable key, and signs a workload certificate with the current issuer.
package certify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/l5d-go/l5d/identity/issuer"
	"github.com/l5d-go/l5d/pkg/certs"
	pb "github.com/l5d-go/l5d/proto/gen/identity"
)

// Defaults, as in Linkerd.
const (
	DefaultTrustDomain  = "cluster.local"
	DefaultControllerNS = "linkerd"
	DefaultLifetime     = 24 * time.Hour
	DefaultClockSkew    = 20 * time.Second
	// TokenAudience is the audience of the projected tokens proxies present.
	TokenAudience = "identity.l5d.io"
)

// Refusal reasons, the label of identity_certify_refused_total.
const (
	ReasonBadIdentity = "bad_identity"
	ReasonBadCSR      = "bad_csr"
	ReasonBadToken    = "bad_token"
	ReasonWrongSA     = "wrong_serviceaccount"
	ReasonUnavailable = "unavailable"
	ReasonOverloaded  = "overloaded"
	ReasonInternal    = "internal"
)

// Reviewer validates a token; see TokenReviewer.
type Reviewer interface {
	// Review returns the authenticated user name ("system:serviceaccount:ns:sa"), or
	// ErrUnauthenticated when the token is not valid for the audience, ErrOverloaded
	// when the check was refused because too many are waiting, or another error when
	// the check could not be made. identity is the requested identity, whose
	// ServiceAccount the token's unverified claims were found to name (see
	// CheckTokenClaims); a reviewer may use it to share its capacity among callers.
	Review(ctx context.Context, token, identity string) (string, error)
}

// ErrUnauthenticated means the token was checked and is not valid.
var ErrUnauthenticated = errors.New("token is not valid")

// Options configures a Service.
type Options struct {
	// Issuer holds the signing credentials; Certify is Unavailable while it is empty.
	Issuer *issuer.Store
	// Reviewer checks tokens (a TokenReviewer in production).
	Reviewer Reviewer
	// TrustDomain and ControllerNS end every identity; DefaultTrustDomain and
	// DefaultControllerNS when empty.
	TrustDomain  string
	ControllerNS string
	// Lifetime of issued certificates; DefaultLifetime when <= 0.
	Lifetime time.Duration
	// ClockSkew backdates NotBefore and extends NotAfter; DefaultClockSkew when <= 0.
	ClockSkew time.Duration
	// Log receives one line per refusal (Info) and issuance (Debug); slog.Default when nil.
	Log *slog.Logger
	// Metrics count issuances and refusals; unregistered ones when nil.
	Metrics *Metrics
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Service is the Identity gRPC service.
type Service struct {
	pb.UnimplementedIdentityServer
	o Options
}

// New returns a Service; zero options take Linkerd's defaults.
func New(o Options) *Service {
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if o.ControllerNS == "" {
		o.ControllerNS = DefaultControllerNS
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.ClockSkew <= 0 {
		o.ClockSkew = DefaultClockSkew
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	return &Service{o: o}
}

// CheckNames checks that the controller namespace is a DNS label and the trust domain a
// DNS name, so that the identities built from them are valid DNS names.
func CheckNames(controllerNS, trustDomain string) error {
	if len(controllerNS) > 63 || controllerNS == "" || !dnsLabelish(controllerNS) {
		return fmt.Errorf("controller namespace %q is not a DNS label", trunc(controllerNS))
	}
	if len(trustDomain) > 253 {
		return fmt.Errorf("trust domain %q is longer than 253 characters", trunc(trustDomain))
	}
	for _, l := range strings.Split(trustDomain, ".") {
		if l == "" || len(l) > 63 || !dnsLabelish(l) {
			return fmt.Errorf("trust domain %q is not a DNS name (label %q)", trunc(trustDomain), trunc(l))
		}
	}
	return nil
}

// Identity returns the identity name of a ServiceAccount.
func (s *Service) Identity(ns, sa string) string {
	return certs.WorkloadIdentity(sa, ns, s.o.ControllerNS, s.o.TrustDomain)
}

// ParseIdentity splits an identity name into its ServiceAccount namespace and name,
// checking the suffix for this control plane and trust domain.
func (s *Service) ParseIdentity(id string) (ns, sa string, err error) {
	suffix := "." + certs.IdentitySuffix(s.o.ControllerNS, s.o.TrustDomain)
	rest, ok := strings.CutSuffix(id, suffix)
	if !ok {
		return "", "", fmt.Errorf("identity %q does not end in %q", trunc(id), suffix)
	}
	sa, ns, ok = strings.Cut(rest, ".")
	if !ok || sa == "" || ns == "" || strings.Contains(ns, ".") {
		return "", "", fmt.Errorf("identity %q is not <serviceaccount>.<namespace>%s", trunc(id), suffix)
	}
	for _, label := range []string{sa, ns} {
		if len(label) > 63 || !dnsLabelish(label) {
			return "", "", fmt.Errorf("identity %q has %q, which is not a DNS label (lower-case letters, digits and '-', at most 63)", trunc(id), trunc(label))
		}
	}
	return ns, sa, nil
}

// Certify implements the gRPC method.
func (s *Service) Certify(ctx context.Context, req *pb.CertifyRequest) (*pb.CertifyResponse, error) {
	start := s.o.Now()
	resp, reason, err := s.certify(ctx, req)
	s.o.Metrics.observe(reason, s.o.Now().Sub(start))
	if err != nil {
		s.o.Log.Info("certificate refused", "identity", trunc(req.GetIdentity()), "reason", reason, "error", err)
		return nil, err
	}
	s.o.Log.Debug("certificate issued", "identity", req.GetIdentity())
	return resp, nil
}

// Validate checks everything about a request that needs no API call: the identity name,
// the token's structure and claims (CheckTokenClaims) and the CSR. It returns the
// identity's ServiceAccount, or a gRPC status error (InvalidArgument or Unauthenticated)
// saying what is wrong.
func (s *Service) Validate(req *pb.CertifyRequest) (ns, sa string, err error) {
	v, _, err := s.validate(req)
	return v.ns, v.sa, err
}

// validRequest is what validate found in a request: the identity's ServiceAccount and
// the public key of the CSR, whose signature and name have been checked.
type validRequest struct {
	ns, sa string
	key    any
}

func (s *Service) validate(req *pb.CertifyRequest) (v validRequest, reason string, err error) {
	ns, sa, err := s.ParseIdentity(req.GetIdentity())
	if err != nil {
		return v, ReasonBadIdentity, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(req.GetToken()) == 0 {
		return v, ReasonBadToken, status.Error(codes.Unauthenticated, "no token in the request")
	}
	// Before the CSR, whose signature check costs more, and before any TokenReview: a
	// token that cannot be the requested account's is refused here, for free.
	if reason, err := CheckTokenClaims(string(req.GetToken()), ns, sa, s.o.Now(), TokenExpiryLeeway+s.o.ClockSkew); err != nil {
		return v, reason, status.Error(codes.Unauthenticated, err.Error())
	}
	badCSR := func(format string, args ...any) (validRequest, string, error) {
		return validRequest{}, ReasonBadCSR, status.Errorf(codes.InvalidArgument, "certificate signing request: "+format, args...)
	}
	csr, err := certs.ParseCSR(req.GetCertificateSigningRequest())
	if err != nil {
		return badCSR("%v", err)
	}
	name, err := certs.CSRName(csr)
	if err != nil {
		return badCSR("%v", err)
	}
	if name != req.GetIdentity() {
		return badCSR("names %q, not the requested identity %q", trunc(name), trunc(req.GetIdentity()))
	}
	if err := acceptableKey(csr.PublicKey); err != nil {
		return badCSR("%v", err)
	}
	return validRequest{ns: ns, sa: sa, key: csr.PublicKey}, "", nil
}

func (s *Service) certify(ctx context.Context, req *pb.CertifyRequest) (*pb.CertifyResponse, string, error) {
	// The issuer first: while it is missing or expired nothing can be signed, and saying
	// so beats refusing the request for what a working service would refuse it for.
	creds := s.o.Issuer.Current()
	if creds == nil {
		return nil, ReasonUnavailable, status.Error(codes.Unavailable, "identity issuer not loaded yet")
	}
	if now := s.o.Now(); !now.Before(creds.Expiry()) {
		return nil, ReasonUnavailable, status.Errorf(codes.Unavailable, "identity issuer %q expired at %s: the issuer Secret must be rotated",
			creds.Authority.Cert.Subject.CommonName, creds.Expiry().UTC().Format(time.RFC3339))
	}
	v, reason, err := s.validate(req)
	if err != nil {
		return nil, reason, err
	}
	user, err := s.o.Reviewer.Review(ctx, string(req.GetToken()), req.GetIdentity())
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return nil, ReasonBadToken, status.Errorf(codes.Unauthenticated, "token for %q: %v", req.GetIdentity(), err)
	case errors.Is(err, ErrOverloaded):
		return nil, ReasonOverloaded, status.Errorf(codes.ResourceExhausted, "token for %q not checked: %v", req.GetIdentity(), err)
	case err != nil:
		return nil, ReasonUnavailable, status.Errorf(codes.Unavailable, "checking the token with the Kubernetes API: %v", err)
	}
	if want := saUserPrefix + v.ns + ":" + v.sa; user != want {
		return nil, ReasonWrongSA, status.Errorf(codes.PermissionDenied, "token belongs to %q, which may not use identity %q", trunc(user), req.GetIdentity())
	}
	now := s.o.Now()
	validity := certs.Validity{NotBefore: now.Add(-s.o.ClockSkew), NotAfter: now.Add(s.o.Lifetime + s.o.ClockSkew)}
	// The CSR was parsed and its signature, name and key checked by validate: sign its
	// key for the identity it was checked to name, without parsing it again.
	leaf, err := creds.Authority.IssueLeaf(v.key, req.GetIdentity(), validity)
	if err != nil {
		return nil, ReasonInternal, status.Errorf(codes.Internal, "signing the certificate: %v", err)
	}
	resp := &pb.CertifyResponse{LeafCertificate: leaf.Raw, ValidUntil: timestamppb.New(leaf.NotAfter)}
	for _, c := range creds.Authority.ChainFor() {
		resp.IntermediateCertificates = append(resp.IntermediateCertificates, c.Raw)
	}
	return resp, "", nil
}

// acceptableKey allows ECDSA P-256 (what proxies generate) and RSA keys of at least 2048
// bits; other curves and Ed25519 are refused, as Linkerd's proxies never send them.
func acceptableKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("ECDSA key on curve %s: only P-256 is accepted", k.Curve.Params().Name)
		}
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits: at least 2048 are required", k.N.BitLen())
		}
		return nil
	case ed25519.PublicKey:
		return errors.New("Ed25519 keys are not accepted: use ECDSA P-256")
	}
	return fmt.Errorf("unsupported public key type %T", pub)
}

// dnsLabelish reports whether s is a non-empty run of lower-case letters, digits and
// inner hyphens (length is checked by callers).
func dnsLabelish(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return s[0] != '-' && s[len(s)-1] != '-'
}

func trunc(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
