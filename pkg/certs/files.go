package certs

import (
	"fmt"
	"os"
	"path/filepath"
)

// Names of the identity files Linkerd's instructions make (`step certificate create`) and
// hand to `linkerd install --identity-*-file` or `helm install --set-file`.
const (
	TrustAnchorFile = "ca.crt"
	IssuerCertFile  = "issuer.crt"
	IssuerKeyFile   = "issuer.key"
)

// WriteIdentityFiles generates a trust anchor (DefaultAnchorCommonName) and an issuer it
// signs for trustDomain, both valid over v, and writes them as PEM to dir (created if
// missing) as TrustAnchorFile, IssuerCertFile and IssuerKeyFile, readable by the owner only.
// It returns both authorities, whose keys let a caller sign more (a rotated issuer).
func WriteIdentityFiles(dir, trustDomain string, v Validity) (anchor, issuer *Authority, err error) {
	anchor, err = NewTrustAnchor(DefaultAnchorCommonName, v)
	if err != nil {
		return nil, nil, err
	}
	issuer, err = anchor.NewIssuer(IssuerCommonName(trustDomain), v)
	if err != nil {
		return nil, nil, err
	}
	key, err := EncodePrivateKeyPEM(issuer.Key)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("identity files: %w", err)
	}
	for name, data := range map[string][]byte{
		TrustAnchorFile: EncodeCertificatesPEM(anchor.Cert),
		IssuerCertFile:  EncodeCertificatesPEM(issuer.Cert),
		IssuerKeyFile:   key,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, nil, fmt.Errorf("identity files: %w", err)
		}
	}
	return anchor, issuer, nil
}
