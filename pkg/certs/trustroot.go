package certs

import (
	"crypto/sha256"
	"encoding/hex"
)

// TrustRootSHA256 returns the hex SHA-256 of the trust anchors' PEM text exactly as given,
// the value of the linkerd.io/trust-root-sha256 pod annotation. Linkerd hashes the PEM as
// stored in its configuration, including the trailing newline, so pass the same bytes the
// proxy receives in LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS.
func TrustRootSHA256(anchorsPEM []byte) string {
	sum := sha256.Sum256(anchorsPEM)
	return hex.EncodeToString(sum[:])
}
