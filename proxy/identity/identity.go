// Package identity gives the proxy its workload certificate: it makes an ECDSA P-256 key
// in memory, builds a CSR for the local identity name, asks the control plane's
// Identity.Certify for a certificate (with the service-account token re-read from its
// file on every call), checks the answer against the trust anchors, and renews it at 70%
// of its lifetime, retrying with jittered backoff on failure. The key never leaves memory.
package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/l5d-go/l5d/pkg/certs"
	pbidentity "github.com/l5d-go/l5d/proto/gen/identity"
	"github.com/l5d-go/l5d/proxy/metrics"
)

// Defaults for Options.
const (
	DefaultRenewFraction = 0.7
	DefaultMinBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff    = 10 * time.Second
)

// Options configures an Identity.
type Options struct {
	// Client is the Identity service client; required.
	Client pbidentity.IdentityClient
	// LocalName is this workload's identity (LINKERD2_PROXY_IDENTITY_LOCAL_NAME); required.
	LocalName string
	// TokenFile holds the token sent with each Certify call; read afresh each time.
	TokenFile string
	// TrustAnchors verify issued certificates and peers; required.
	TrustAnchors []*x509.Certificate
	// RenewFraction of a certificate's lifetime passes before it is renewed (default 0.7).
	RenewFraction float64
	// MinBackoff and MaxBackoff bound the retry delay after a failed Certify.
	MinBackoff, MaxBackoff time.Duration
	// Metrics, when set, receives identity_cert_expiration_timestamp_seconds and
	// identity_cert_refresh_count.
	Metrics *metrics.Registry
	Log     *slog.Logger
}

// Identity is the proxy's workload identity and its current certificate. Its methods are
// safe for concurrent use; Certificate is a single atomic load.
type Identity struct {
	opts  Options
	key   *ecdsa.PrivateKey
	csr   []byte
	roots *x509.CertPool

	cert      atomic.Pointer[tls.Certificate]
	ready     chan struct{}
	refreshes atomic.Uint64
	failures  atomic.Uint64
}

// New makes the key and CSR; Run obtains and renews the certificate.
func New(opts Options) (*Identity, error) {
	if opts.Client == nil {
		return nil, errors.New("identity: no Identity service client")
	}
	if opts.LocalName == "" {
		return nil, errors.New("identity: no local identity name")
	}
	if len(opts.TrustAnchors) == 0 {
		return nil, errors.New("identity: no trust anchors")
	}
	if opts.RenewFraction <= 0 || opts.RenewFraction >= 1 {
		opts.RenewFraction = DefaultRenewFraction
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	key, err := certs.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("identity: generating the key: %w", err)
	}
	csr, err := certs.NewCSR(key, opts.LocalName)
	if err != nil {
		return nil, fmt.Errorf("identity: building the CSR for %s: %w", opts.LocalName, err)
	}
	id := &Identity{opts: opts, key: key, csr: csr, roots: certs.NewPool(opts.TrustAnchors...), ready: make(chan struct{})}
	if m := opts.Metrics; m != nil {
		m.Func("identity_cert_expiration_timestamp_seconds", "gauge",
			"Time when this proxy's current mTLS identity certificate will expire (in seconds since the UNIX epoch)",
			"", func() float64 {
				if c := id.cert.Load(); c != nil {
					return float64(c.Leaf.NotAfter.Unix())
				}
				return 0
			})
		m.Func("identity_cert_refresh_count", "counter",
			"The total number of times this proxy's mTLS identity certificate has been refreshed by the Identity service",
			"", func() float64 { return float64(id.refreshes.Load()) })
	}
	return id, nil
}

// Name returns the local identity name.
func (id *Identity) Name() string { return id.opts.LocalName }

// Roots returns the trust anchors as a pool.
func (id *Identity) Roots() *x509.CertPool { return id.roots }

// Ready is closed once the first certificate is in place.
func (id *Identity) Ready() <-chan struct{} { return id.ready }

// Certificate returns the current certificate (with Leaf set), or nil before the first.
func (id *Identity) Certificate() *tls.Certificate { return id.cert.Load() }

// Refreshes returns how many certificates have been obtained.
func (id *Identity) Refreshes() uint64 { return id.refreshes.Load() }

// Run obtains the first certificate and renews it until ctx ends. A failed Certify is
// retried with jittered exponential backoff; the current certificate stays in use
// meanwhile, until it expires.
func (id *Identity) Run(ctx context.Context) {
	attempt := 0
	for {
		var wait time.Duration
		notAfter, err := id.certify(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			id.failures.Add(1)
			wait = backoff(id.opts.MinBackoff, id.opts.MaxBackoff, attempt)
			attempt++
			lvl := slog.LevelWarn
			if c := id.cert.Load(); c != nil && time.Now().After(c.Leaf.NotAfter) {
				lvl = slog.LevelError
			}
			id.opts.Log.Log(ctx, lvl, "identity certificate request failed; retrying", "error", err, "retry_in", wait)
		} else {
			attempt = 0
			c := id.cert.Load()
			life := notAfter.Sub(c.Leaf.NotBefore)
			wait = time.Until(c.Leaf.NotBefore.Add(time.Duration(float64(life) * id.opts.RenewFraction)))
			wait = max(wait, id.opts.MinBackoff)
			id.opts.Log.Info("identity certificate obtained", "identity", id.opts.LocalName,
				"expiry", notAfter.UTC().Format(time.RFC3339), "renew_in", wait.Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// certify makes one Certify call and installs the certificate if it checks out.
func (id *Identity) certify(ctx context.Context) (time.Time, error) {
	var token []byte
	if id.opts.TokenFile != "" {
		var err error
		token, err = os.ReadFile(id.opts.TokenFile)
		if err != nil {
			return time.Time{}, fmt.Errorf("reading the identity token: %w", err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := id.opts.Client.Certify(cctx, &pbidentity.CertifyRequest{
		Identity: id.opts.LocalName, Token: token, CertificateSigningRequest: id.csr})
	if err != nil {
		return time.Time{}, fmt.Errorf("Identity.Certify: %w", err)
	}
	c, err := id.check(resp, time.Now())
	if err != nil {
		return time.Time{}, err
	}
	id.cert.Store(c)
	id.refreshes.Add(1)
	select {
	case <-id.ready:
	default:
		close(id.ready)
	}
	return c.Leaf.NotAfter, nil
}

// check verifies a Certify answer: the leaf must be for our key and name and chain to a
// trust anchor now.
func (id *Identity) check(resp *pbidentity.CertifyResponse, now time.Time) (*tls.Certificate, error) {
	chain, err := certs.ParseCertificatesDER(append([][]byte{resp.GetLeafCertificate()}, resp.GetIntermediateCertificates()...)...)
	if err != nil {
		return nil, fmt.Errorf("identity certificate from the control plane: %w", err)
	}
	leaf, inter := chain[0], chain[1:]
	if err := certs.MatchesKey(leaf, id.key); err != nil {
		return nil, fmt.Errorf("identity certificate from the control plane: %w", err)
	}
	if !slices.Contains(leaf.DNSNames, id.opts.LocalName) {
		return nil, fmt.Errorf("identity certificate from the control plane names %v, not %s", leaf.DNSNames, id.opts.LocalName)
	}
	if err := certs.VerifyChain(leaf, inter, id.opts.TrustAnchors, now, x509.ExtKeyUsageAny); err != nil {
		return nil, fmt.Errorf("identity certificate from the control plane does not verify against the trust anchors: %w", err)
	}
	tc := certs.TLSCertificate(id.key, leaf, inter...)
	tc.Leaf = leaf
	return &tc, nil
}

func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo << min(n, 20)
	if d > hi || d <= 0 {
		d = hi
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
