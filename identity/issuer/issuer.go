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
)

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
	anchors, err := certs.ParseCertificatesPEM([]byte(data))
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s %q: %w", cm.Namespace, cm.Name, TrustRootsKey, err)
	}
	if len(anchors) == 0 {
		return nil, fmt.Errorf("ConfigMap %s/%s %q holds no certificate", cm.Namespace, cm.Name, TrustRootsKey)
	}
	return anchors, nil
}

// Load builds credentials from the issuer Secret (either scheme) and the trust anchors,
// and checks that the issuer is a CA within its validity period at now, that its key
// matches, and that it chains to one of the anchors.
func Load(secret *corev1.Secret, anchors []*x509.Certificate, now time.Time) (*Credentials, error) {
	if secret == nil {
		return nil, errors.New("issuer Secret not found")
	}
	where := fmt.Sprintf("Secret %s/%s", secret.Namespace, secret.Name)
	crtKey, keyKey := "crt.pem", "key.pem"
	if secret.Type == corev1.SecretTypeTLS || secret.Data["tls.crt"] != nil {
		crtKey, keyKey = corev1.TLSCertKey, corev1.TLSPrivateKeyKey
	}
	crtPEM, keyPEM := secret.Data[crtKey], secret.Data[keyKey]
	if len(crtPEM) == 0 || len(keyPEM) == 0 {
		return nil, fmt.Errorf("%s: needs %q and %q", where, crtKey, keyKey)
	}
	chain, err := certs.ParseCertificatesPEM(crtPEM)
	if err != nil || len(chain) == 0 {
		return nil, fmt.Errorf("%s %q: not a PEM certificate: %v", where, crtKey, err)
	}
	key, err := certs.DecodePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", where, keyKey, err)
	}
	if err := certs.MatchesKey(chain[0], key); err != nil {
		return nil, fmt.Errorf("%s: key does not match the certificate: %w", where, err)
	}
	// Intermediates follow the issuer in crt.pem; a cert-manager ca.crt may add more,
	// but anchors themselves are not part of the presented chain.
	intermediates := chain[1:]
	if err := certs.VerifyIssuer(chain[0], intermediates, anchors, now); err != nil {
		return nil, fmt.Errorf("%s: issuer certificate %q is not usable: %w", where, chain[0].Subject.CommonName, err)
	}
	auth, err := certs.NewAuthority(chain[0], key, intermediates...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &Credentials{Authority: auth, Anchors: anchors, Version: secret.ResourceVersion}, nil
}

// Store holds the credentials in use; reads are lock-free.
type Store struct {
	cur atomic.Pointer[Credentials]
}

// Current returns the credentials in use, or nil before the first load.
func (s *Store) Current() *Credentials { return s.cur.Load() }

// Set replaces the credentials in use.
func (s *Store) Set(c *Credentials) { s.cur.Store(c) }
