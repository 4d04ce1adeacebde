package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
)

// GenerateKey returns a new ECDSA P-256 private key, the key type of every certificate in
// the mesh.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating ECDSA P-256 key: %w", err)
	}
	return k, nil
}

// publicKeysEqual reports whether two public keys are the same key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// MatchesKey returns nil when key is the private key of cert's public key, and an error
// saying they do not match otherwise. Use it before installing an issuer certificate and
// key read from separate files.
func MatchesKey(c *x509.Certificate, key crypto.Signer) error {
	if c == nil {
		return fmt.Errorf("certificate is missing")
	}
	if key == nil {
		return fmt.Errorf("private key is missing")
	}
	if !publicKeysEqual(c.PublicKey, key.Public()) {
		return fmt.Errorf("private key does not match the public key of certificate %q", c.Subject.CommonName)
	}
	return nil
}
