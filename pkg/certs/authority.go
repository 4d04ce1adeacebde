package certs

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Names and lifetimes Linkerd uses for its trust hierarchy.
const (
	// DefaultAnchorCommonName is the trust anchor's CN in Linkerd's documented
	// step-CLI recipe.
	DefaultAnchorCommonName = "root.linkerd.cluster.local"
	// DefaultIssuerCommonName is the identity issuer's CN and DNS name for the
	// cluster.local trust domain.
	DefaultIssuerCommonName = "identity.linkerd.cluster.local"
	// DefaultAnchorLifetime is how long `linkerd install` makes a generated anchor valid.
	DefaultAnchorLifetime = 365 * 24 * time.Hour
	// DefaultIssuerLifetime is how long `linkerd install` makes a generated issuer valid.
	DefaultIssuerLifetime = 365 * 24 * time.Hour
	// DefaultLeafLifetime is the workload certificate lifetime (Linkerd's issuanceLifetime).
	DefaultLeafLifetime = 24 * time.Hour
	// ClockSkew is the allowance Linkerd adds on each side of a validity window so that
	// peers whose clocks differ slightly still accept a fresh certificate.
	ClockSkew = 20 * time.Second
)

// IssuerCommonName returns the identity issuer's name for a trust domain, such as
// "identity.linkerd.cluster.local" for "cluster.local".
func IssuerCommonName(trustDomain string) string {
	return "identity.linkerd." + trustDomain
}

// Validity is a certificate's validity window.
type Validity struct {
	NotBefore time.Time
	NotAfter  time.Time
}

// ValidFor returns the window of a certificate issued at now for lifetime: it begins
// ClockSkew before now and ends lifetime plus ClockSkew after now, as Linkerd's identity
// service does (a 24h workload certificate is valid for 24h40s).
func ValidFor(now time.Time, lifetime time.Duration) Validity {
	return Validity{NotBefore: now.Add(-ClockSkew), NotAfter: now.Add(lifetime + ClockSkew)}
}

func (v Validity) check() error {
	if v.NotBefore.IsZero() || v.NotAfter.IsZero() {
		return errors.New("validity window needs both NotBefore and NotAfter")
	}
	if !v.NotAfter.After(v.NotBefore) {
		return fmt.Errorf("validity window is empty: NotAfter %s is not after NotBefore %s",
			v.NotAfter.UTC().Format(time.RFC3339), v.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// Authority is a certificate authority: a CA certificate and its private key. A trust
// anchor and an identity issuer are both Authorities.
type Authority struct {
	// Cert is the authority's CA certificate.
	Cert *x509.Certificate
	// Key is the private key of Cert's public key.
	Key crypto.Signer
	// Chain holds the certificates between Cert and a trust anchor, nearest first;
	// it is empty for an anchor and for an issuer signed directly by one. Leaves issued
	// by this authority are presented with Cert followed by Chain.
	Chain []*x509.Certificate
}

// NewAuthority returns an Authority for an existing CA certificate and key (for example
// an issuer read from the linkerd-identity-issuer Secret). It fails when the certificate
// is not a CA that may sign certificates or when the key does not match it.
func NewAuthority(cert *x509.Certificate, key crypto.Signer, chain ...*x509.Certificate) (*Authority, error) {
	if err := checkCA(cert); err != nil {
		return nil, err
	}
	if err := MatchesKey(cert, key); err != nil {
		return nil, err
	}
	return &Authority{Cert: cert, Key: key, Chain: chain}, nil
}

// NewTrustAnchor creates a self-signed root CA with a new ECDSA P-256 key, subject
// CN=cn (for example DefaultAnchorCommonName), valid over v.
func NewTrustAnchor(cn string, v Validity) (*Authority, error) {
	if cn == "" {
		return nil, errors.New("trust anchor needs a common name")
	}
	if err := v.check(); err != nil {
		return nil, fmt.Errorf("trust anchor %q: %w", cn, err)
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	tmpl, err := caTemplate(cn, v)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signing trust anchor %q: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new trust anchor %q: %w", cn, err)
	}
	return &Authority{Cert: cert, Key: key}, nil
}

// NewIssuer creates an intermediate CA signed by a, with a new ECDSA P-256 key, subject
// CN=cn and DNS SAN cn (for example DefaultIssuerCommonName), and a maximum path length of
// zero so it can sign only leaves. Its NotAfter is clipped to a's.
func (a *Authority) NewIssuer(cn string, v Validity) (*Authority, error) {
	if cn == "" {
		return nil, errors.New("issuer needs a common name")
	}
	if err := v.check(); err != nil {
		return nil, fmt.Errorf("issuer %q: %w", cn, err)
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	tmpl, err := caTemplate(cn, a.clip(v))
	if err != nil {
		return nil, err
	}
	tmpl.MaxPathLen = 0
	tmpl.MaxPathLenZero = true
	tmpl.DNSNames = []string{cn}
	cert, err := a.sign(tmpl, key.Public())
	if err != nil {
		return nil, fmt.Errorf("signing issuer %q: %w", cn, err)
	}
	chain := append([]*x509.Certificate(nil), a.Chain...)
	if !isSelfSigned(a.Cert) {
		chain = append([]*x509.Certificate{a.Cert}, chain...)
	}
	return &Authority{Cert: cert, Key: key, Chain: chain}, nil
}

// IssueLeaf signs a workload certificate for pub with subject CN=name and the single DNS
// SAN name, key usages digital signature and key encipherment, and extended usages
// serverAuth and clientAuth. Its NotAfter is clipped to the authority's. The caller is
// responsible for having checked that the requester owns name.
func (a *Authority) IssueLeaf(pub crypto.PublicKey, name string, v Validity) (*x509.Certificate, error) {
	if name == "" {
		return nil, errors.New("leaf certificate needs a name")
	}
	if pub == nil {
		return nil, fmt.Errorf("leaf certificate %q: public key is missing", name)
	}
	if err := v.check(); err != nil {
		return nil, fmt.Errorf("leaf certificate %q: %w", name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	v = a.clip(v)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             v.NotBefore,
		NotAfter:              v.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	cert, err := a.sign(tmpl, pub)
	if err != nil {
		return nil, fmt.Errorf("signing leaf certificate %q: %w", name, err)
	}
	return cert, nil
}

// ChainFor returns the intermediates a peer needs to verify a leaf issued by a: the
// authority's certificate followed by its Chain. A self-signed authority (an anchor
// signing leaves directly) contributes nothing.
func (a *Authority) ChainFor() []*x509.Certificate {
	if isSelfSigned(a.Cert) {
		return append([]*x509.Certificate(nil), a.Chain...)
	}
	return append([]*x509.Certificate{a.Cert}, a.Chain...)
}

func (a *Authority) clip(v Validity) Validity {
	if v.NotAfter.After(a.Cert.NotAfter) {
		v.NotAfter = a.Cert.NotAfter
	}
	return v
}

func (a *Authority) sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	if a == nil || a.Cert == nil || a.Key == nil {
		return nil, errors.New("authority has no certificate or key")
	}
	if !tmpl.NotAfter.After(tmpl.NotBefore) {
		return nil, fmt.Errorf("authority %q expires at %s, before the certificate could start",
			a.Cert.Subject.CommonName, a.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, pub, a.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func caTemplate(cn string, v Validity) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             v.NotBefore,
		NotAfter:              v.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil
}

// newSerial returns a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// isSelfSigned reports whether c is signed by its own key. Only a self-issued certificate
// (subject equal to issuer) can be, so the signature check, which costs as much as
// signing a leaf, is made only for those.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}
