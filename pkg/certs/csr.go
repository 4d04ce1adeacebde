package certs

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
)

// NewCSR returns a DER certificate signing request for name, signed by key, with subject
// CN=name and the single DNS SAN name: what a proxy sends to the identity service.
func NewCSR(key crypto.Signer, name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("certificate request needs a name")
	}
	if key == nil {
		return nil, fmt.Errorf("certificate request %q: private key is missing", name)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: name},
		DNSNames: []string{name},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("creating certificate request %q: %w", name, err)
	}
	return der, nil
}

// ParseCSR parses a DER certificate signing request and checks that it is signed by the
// key it carries.
func ParseCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, errors.New("certificate request is empty")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature is invalid: %w", err)
	}
	return csr, nil
}

// CSRName returns the identity a certificate request asks for: its single DNS SAN. A
// request with no DNS SAN, several, or with IP, email or URI SANs is an error.
func CSRName(csr *x509.CertificateRequest) (string, error) {
	if len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs) > 0 {
		return "", errors.New("certificate request may only name DNS SANs")
	}
	switch len(csr.DNSNames) {
	case 0:
		return "", errors.New("certificate request has no DNS SAN")
	case 1:
		if csr.DNSNames[0] == "" {
			return "", errors.New("certificate request has an empty DNS SAN")
		}
		return csr.DNSNames[0], nil
	default:
		return "", fmt.Errorf("certificate request has %d DNS SANs, expected one", len(csr.DNSNames))
	}
}
