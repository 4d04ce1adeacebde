package certs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// NewPool returns a certificate pool holding certs, for use as RootCAs or ClientCAs.
func NewPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// TLSCertificate returns a tls.Certificate presenting leaf followed by intermediates and
// signing with key.
func TLSCertificate(key crypto.Signer, leaf *x509.Certificate, intermediates ...*x509.Certificate) tls.Certificate {
	chain := make([][]byte, 0, 1+len(intermediates))
	chain = append(chain, leaf.Raw)
	for _, c := range intermediates {
		chain = append(chain, c.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}
}

// VerifyChain checks that leaf, with the given intermediates, chains to one of anchors and
// that every certificate on the way is valid at time at and allows usage (for example
// x509.ExtKeyUsageServerAuth; x509.ExtKeyUsageAny accepts any). The error says why the
// chain is rejected.
func VerifyChain(leaf *x509.Certificate, intermediates, anchors []*x509.Certificate, at time.Time, usage x509.ExtKeyUsage) error {
	if leaf == nil {
		return errors.New("certificate is missing")
	}
	if len(anchors) == 0 {
		return errors.New("no trust anchors to verify against")
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         NewPool(anchors...),
		Intermediates: NewPool(intermediates...),
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return fmt.Errorf("certificate %q is not trusted: %w", leaf.Subject.CommonName, err)
	}
	return nil
}

// VerifyIssuer checks that issuer can serve as the identity issuer at time now: it is a CA
// allowed to sign certificates, it is within its validity window, and it chains (through
// intermediates, if any) to one of anchors. Use it to validate a new issuer before
// rotating to it.
func VerifyIssuer(issuer *x509.Certificate, intermediates, anchors []*x509.Certificate, now time.Time) error {
	if err := checkCA(issuer); err != nil {
		return err
	}
	name := issuer.Subject.CommonName
	if now.Before(issuer.NotBefore) {
		return fmt.Errorf("issuer certificate %q is not valid until %s", name, issuer.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(issuer.NotAfter) {
		return fmt.Errorf("issuer certificate %q expired at %s", name, issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := VerifyChain(issuer, intermediates, anchors, now, x509.ExtKeyUsageAny); err != nil {
		return fmt.Errorf("issuer certificate %q does not chain to the trust anchors: %w", name, err)
	}
	return nil
}

// checkCA fails unless c is a CA certificate whose key usage allows signing certificates.
func checkCA(c *x509.Certificate) error {
	if c == nil {
		return errors.New("certificate is missing")
	}
	name := c.Subject.CommonName
	if !c.BasicConstraintsValid || !c.IsCA {
		return fmt.Errorf("certificate %q is not a CA (basic constraints CA:TRUE missing)", name)
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("certificate %q is a CA but its key usage does not allow certificate signing", name)
	}
	return nil
}
