// Package issuer loads the identity service's signing credentials, the issuer certificate
// and key from the linkerd-identity-issuer Secret checked against the trust anchors from
// the linkerd-identity-trust-roots ConfigMap, and keeps them current as those objects
// change, refusing any replacement that is not a valid issuer.
package issuer

import (
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/l5d-go/l5d/pkg/certs"
)

// Names and keys of the objects the issuer comes from, as Linkerd lays them out.
const (
	DefaultSecretName    = "linkerd-identity-issuer"
	DefaultTrustRootsMap = "linkerd-identity-trust-roots"
	TrustRootsKey        = "ca-bundle.crt"

	// SchemeLinkerd is the default Secret layout: crt.pem and key.pem.
	SchemeLinkerd = "linkerd.io/tls"
	// SchemeKubernetes is the kubernetes.io/tls layout (tls.crt, tls.key, ca.crt) that
	// cert-manager writes.
	SchemeKubernetes = "kubernetes.io/tls"

	// DefaultIssuerDir is where Linkerd mounts the issuer Secret in the identity pod.
	DefaultIssuerDir = "/var/run/linkerd/identity/issuer"
	// DefaultTrustAnchorsFile is where Linkerd mounts the trust-roots ConfigMap's bundle.
	DefaultTrustAnchorsFile = "/var/run/linkerd/identity/trust-roots/" + TrustRootsKey
)

// KeyNames returns the Secret keys (and mounted file names) of the issuer certificate and
// private key for scheme: crt.pem and key.pem for linkerd.io/tls, tls.crt and tls.key for
// kubernetes.io/tls. Any other scheme is an error naming it.
func KeyNames(scheme string) (crt, key string, err error) {
	switch scheme {
	case SchemeLinkerd, "":
		return "crt.pem", "key.pem", nil
	case SchemeKubernetes:
		return corev1.TLSCertKey, corev1.TLSPrivateKeyKey, nil
	}
	return "", "", fmt.Errorf("unknown identity issuer scheme %q: use %q or %q", scheme, SchemeLinkerd, SchemeKubernetes)
}

// Credentials are a validated issuer and the trust anchors it chains to.
type Credentials struct {
	// Authority signs workload certificates; Authority.Chain holds any intermediates.
	Authority *certs.Authority
	// Anchors are the trust anchors.
	Anchors []*x509.Certificate
	// Version identifies the Secret revision the credentials came from.
	Version string
}

// Expiry returns when the issuer certificate stops being valid.
func (c *Credentials) Expiry() time.Time { return c.Authority.Cert.NotAfter }

// ParseAnchors parses the PEM trust anchors of the trust-roots ConfigMap.
func ParseAnchors(cm *corev1.ConfigMap) ([]*x509.Certificate, error) {
	if cm == nil {
		return nil, errors.New("trust roots ConfigMap not found")
	}
	data, ok := cm.Data[TrustRootsKey]
	if !ok || data == "" {
		return nil, fmt.Errorf("ConfigMap %s/%s has no %q", cm.Namespace, cm.Name, TrustRootsKey)
	}
	return ParseAnchorsPEM(fmt.Sprintf("ConfigMap %s/%s %q", cm.Namespace, cm.Name, TrustRootsKey), []byte(data))
}

// ParseAnchorsPEM parses a PEM bundle of one or more trust anchors; where names the
// bundle's origin in errors.
func ParseAnchorsPEM(where string, data []byte) ([]*x509.Certificate, error) {
	anchors, err := certs.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("trust anchors %s: %w", where, err)
	}
	if len(anchors) == 0 {
		return nil, fmt.Errorf("trust anchors %s: no PEM certificate", where)
	}
	return anchors, nil
}

// Load builds credentials from the issuer Secret (either scheme: kubernetes.io/tls when the
// Secret has that type or a tls.crt key, linkerd.io/tls otherwise) and the trust anchors;
// see LoadPEM for the checks.
func Load(secret *corev1.Secret, anchors []*x509.Certificate, now time.Time) (*Credentials, error) {
	if secret == nil {
		return nil, errors.New("issuer Secret not found")
	}
	scheme := SchemeLinkerd
	if secret.Type == corev1.SecretTypeTLS || secret.Data[corev1.TLSCertKey] != nil {
		scheme = SchemeKubernetes
	}
	crtKey, keyKey, _ := KeyNames(scheme)
	where := fmt.Sprintf("Secret %s/%s", secret.Namespace, secret.Name)
	crtPEM, keyPEM := secret.Data[crtKey], secret.Data[keyKey]
	if len(crtPEM) == 0 || len(keyPEM) == 0 {
		return nil, fmt.Errorf("%s: needs %q and %q", where, crtKey, keyKey)
	}
	c, err := LoadPEM(where, crtKey, crtPEM, keyKey, keyPEM, anchors, now)
	if err != nil {
		return nil, err
	}
	c.Version = secret.ResourceVersion
	return c, nil
}

// LoadPEM builds credentials from the issuer's PEM certificate (followed by any
// intermediates) and PEM private key, and checks that the issuer is a CA within its
// validity period at now, that the key matches it, and that it chains to one of the
// anchors. where names the origin (the Secret) and crtName/keyName the two entries in
// errors.
func LoadPEM(where, crtName string, crtPEM []byte, keyName string, keyPEM []byte, anchors []*x509.Certificate, now time.Time) (*Credentials, error) {
	chain, err := certs.ParseCertificatesPEM(crtPEM)
	if err != nil {
		return nil, fmt.Errorf("%s %q: not a PEM certificate: %w", where, crtName, err)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%s %q: not a PEM certificate: no CERTIFICATE block", where, crtName)
	}
	key, err := certs.DecodePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", where, keyName, err)
	}
	if err := certs.MatchesKey(chain[0], key); err != nil {
		return nil, fmt.Errorf("%s: key %q does not match the certificate %q: %w", where, keyName, crtName, err)
	}
	// Intermediates follow the issuer in the certificate file; a cert-manager ca.crt is
	// the anchor and is not part of the presented chain.
	intermediates := chain[1:]
	if err := certs.VerifyIssuer(chain[0], intermediates, anchors, now); err != nil {
		return nil, fmt.Errorf("%s: issuer certificate %q is not usable: %w", where, chain[0].Subject.CommonName, err)
	}
	auth, err := certs.NewAuthority(chain[0], key, intermediates...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &Credentials{Authority: auth, Anchors: anchors}, nil
}

// Store holds the credentials in use; reads are lock-free.
type Store struct {
	cur atomic.Pointer[Credentials]
}

// Current returns the credentials in use, or nil before the first load.
func (s *Store) Current() *Credentials { return s.cur.Load() }

// Set replaces the credentials in use.
func (s *Store) Set(c *Credentials) { s.cur.Store(c) }
