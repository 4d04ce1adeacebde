package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// PEM block types this package reads and writes.
const (
	PEMCertificate        = "CERTIFICATE"
	PEMCertificateRequest = "CERTIFICATE REQUEST"
	PEMPrivateKey         = "PRIVATE KEY"
	PEMECPrivateKey       = "EC PRIVATE KEY"
)

// EncodeCertificatePEM returns one "CERTIFICATE" PEM block holding der.
func EncodeCertificatePEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PEMCertificate, Bytes: der})
}

// EncodeCertificatesPEM returns the certificates as consecutive "CERTIFICATE" PEM blocks
// in the order given: a trust bundle, or a chain with the leaf first.
func EncodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		b.Write(EncodeCertificatePEM(c.Raw))
	}
	return b.Bytes()
}

// DecodeCertificatePEM parses data holding exactly one "CERTIFICATE" PEM block.
func DecodeCertificatePEM(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("expected one PEM certificate, found %d", len(certs))
	}
	return certs[0], nil
}

// ParseCertificatesPEM parses a bundle of one or more "CERTIFICATE" PEM blocks, such as
// the identityTrustAnchorsPEM value holding several trust anchors, in order. Text outside
// PEM blocks is ignored; a block of another type, a certificate that does not parse, or a
// bundle with no certificate is an error naming the offending block by position.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for i := 1; ; i++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != PEMCertificate {
			return nil, fmt.Errorf("PEM block %d is %q, expected %q", i, block.Type, PEMCertificate)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: parsing certificate: %w", i, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if bytes.Contains(data, []byte("-----BEGIN")) {
			return nil, errors.New("no complete PEM certificate block found (is the PEM truncated or mis-indented?)")
		}
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// ParseCertificatesDER parses DER certificates, such as the leaf and intermediates of an
// identity Certify response, naming the position of the first that does not parse.
func ParseCertificatesDER(ders ...[]byte) ([]*x509.Certificate, error) {
	certs := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// EncodeChainPEM returns leaf followed by its intermediates as PEM, the layout of a
// kubernetes.io/tls Secret's tls.crt.
func EncodeChainPEM(leaf *x509.Certificate, intermediates ...*x509.Certificate) []byte {
	return EncodeCertificatesPEM(append([]*x509.Certificate{leaf}, intermediates...)...)
}

// DecodeChainPEM splits a PEM chain into its first certificate (the leaf, or an issuer's
// own certificate) and the intermediates after it.
func DecodeChainPEM(data []byte) (leaf *x509.Certificate, intermediates []*x509.Certificate, err error) {
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, nil, err
	}
	return certs[0], certs[1:], nil
}

// EncodePrivateKeyPEM returns key as a PKCS#8 "PRIVATE KEY" PEM block.
func EncodePrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding PKCS#8 private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMPrivateKey, Bytes: der}), nil
}

// EncodeECPrivateKeyPEM returns key as a SEC 1 "EC PRIVATE KEY" PEM block, the form the
// step CLI writes for Linkerd's issuer key.
func EncodeECPrivateKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding EC private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMECPrivateKey, Bytes: der}), nil
}

// DecodePrivateKeyPEM parses the first PEM block of data as a private key, either PKCS#8
// ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY").
func DecodePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key found")
	}
	switch block.Type {
	case PEMPrivateKey:
		return ParsePrivateKeyDER(block.Bytes)
	case PEMECPrivateKey:
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing EC private key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("PEM block is %q, expected %q or %q", block.Type, PEMPrivateKey, PEMECPrivateKey)
	}
}

// ParsePrivateKeyDER parses a PKCS#8 DER private key that can sign.
func ParsePrivateKeyDER(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing PKCS#8 private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("PKCS#8 private key of type %T cannot sign", k)
	}
	return s, nil
}

// EncodeCSRPEM returns a DER certificate request as a "CERTIFICATE REQUEST" PEM block.
func EncodeCSRPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PEMCertificateRequest, Bytes: der})
}

// DecodeCSRPEM parses the first PEM block of data as a certificate request and checks its
// signature (see ParseCSR).
func DecodeCSRPEM(data []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM certificate request found")
	}
	if block.Type != PEMCertificateRequest {
		return nil, fmt.Errorf("PEM block is %q, expected %q", block.Type, PEMCertificateRequest)
	}
	return ParseCSR(block.Bytes)
}
