package diagnostics

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// WriteCertificate writes cert in the layout of `openssl x509 -text` that `linkerd
// identity` prints: version, serial, signature algorithm, issuer, validity, subject,
// public key, the usual X509v3 extensions and the signature. Only public information.
func WriteCertificate(w io.Writer, cert *x509.Certificate) {
	const when = "Jan 2 15:04:05 2006 MST"
	fmt.Fprintln(w, "Certificate:")
	fmt.Fprintln(w, "    Data:")
	fmt.Fprintf(w, "        Version: %d (0x%x)\n", cert.Version, cert.Version-1)
	fmt.Fprintf(w, "        Serial Number: %s\n", serial(cert.SerialNumber))
	fmt.Fprintf(w, "    Signature Algorithm: %s\n", cert.SignatureAlgorithm)
	fmt.Fprintf(w, "        Issuer: %s\n", cert.Issuer)
	fmt.Fprintln(w, "        Validity")
	fmt.Fprintf(w, "            Not Before: %s\n", cert.NotBefore.UTC().Format(when))
	fmt.Fprintf(w, "            Not After : %s\n", cert.NotAfter.UTC().Format(when))
	fmt.Fprintf(w, "        Subject: %s\n", cert.Subject)
	fmt.Fprintln(w, "        Subject Public Key Info:")
	writePublicKey(w, cert)
	writeExtensions(w, cert)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "    Signature Algorithm: %s\n", cert.SignatureAlgorithm)
	hexBlock(w, "         ", cert.Signature, 18)
}

func serial(n *big.Int) string {
	if n == nil {
		return "-"
	}
	if n.IsInt64() && n.Sign() >= 0 {
		return fmt.Sprintf("%d (0x%x)", n.Int64(), n.Int64())
	}
	return "\n            " + colonHex(n.Bytes(), false)
}

func writePublicKey(w io.Writer, cert *x509.Certificate) {
	const in = "                "
	fmt.Fprintf(w, "            Public Key Algorithm: %s\n", cert.PublicKeyAlgorithm)
	switch k := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		fmt.Fprintf(w, "%sPublic-Key: (%d bit)\n", in, k.Curve.Params().BitSize)
		// The uncompressed point is 0x04 || X || Y.
		if b, err := k.Bytes(); err == nil && len(b)%2 == 1 {
			size := len(b) / 2
			fmt.Fprintf(w, "%sX:\n", in)
			hexBlock(w, in+"    ", b[1:1+size], 15)
			fmt.Fprintf(w, "%sY:\n", in)
			hexBlock(w, in+"    ", b[1+size:], 15)
		}
		fmt.Fprintf(w, "%sCurve: %s\n", in, k.Curve.Params().Name)
	case *rsa.PublicKey:
		fmt.Fprintf(w, "%sPublic-Key: (%d bit)\n", in, k.N.BitLen())
		fmt.Fprintf(w, "%sModulus:\n", in)
		hexBlock(w, in+"    ", k.N.Bytes(), 15)
		fmt.Fprintf(w, "%sExponent: %d (0x%x)\n", in, k.E, k.E)
	case ed25519.PublicKey:
		fmt.Fprintf(w, "%sPublic-Key: (256 bit)\n", in)
		hexBlock(w, in+"    ", k, 15)
	}
}

var keyUsages = []struct {
	bit  x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "Digital Signature"},
	{x509.KeyUsageContentCommitment, "Non Repudiation"},
	{x509.KeyUsageKeyEncipherment, "Key Encipherment"},
	{x509.KeyUsageDataEncipherment, "Data Encipherment"},
	{x509.KeyUsageKeyAgreement, "Key Agreement"},
	{x509.KeyUsageCertSign, "Certificate Sign"},
	{x509.KeyUsageCRLSign, "CRL Sign"},
	{x509.KeyUsageEncipherOnly, "Encipher Only"},
	{x509.KeyUsageDecipherOnly, "Decipher Only"},
}

var extKeyUsages = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:             "Any Extended Key Usage",
	x509.ExtKeyUsageServerAuth:      "TLS Web Server Authentication",
	x509.ExtKeyUsageClientAuth:      "TLS Web Client Authentication",
	x509.ExtKeyUsageCodeSigning:     "Code Signing",
	x509.ExtKeyUsageEmailProtection: "E-mail Protection",
	x509.ExtKeyUsageTimeStamping:    "Time Stamping",
	x509.ExtKeyUsageOCSPSigning:     "OCSP Signing",
}

func writeExtensions(w io.Writer, cert *x509.Certificate) {
	const head, body = "            ", "                "
	critical := map[string]bool{}
	for _, e := range cert.Extensions {
		critical[e.Id.String()] = e.Critical
	}
	crit := func(oid string) string {
		if critical[oid] {
			return " critical"
		}
		return ""
	}
	fmt.Fprintln(w, "        X509v3 extensions:")
	if cert.KeyUsage != 0 {
		var names []string
		for _, u := range keyUsages {
			if cert.KeyUsage&u.bit != 0 {
				names = append(names, u.name)
			}
		}
		fmt.Fprintf(w, "%sX509v3 Key Usage:%s\n%s%s\n", head, crit("2.5.29.15"), body, strings.Join(names, ", "))
	}
	if len(cert.ExtKeyUsage) > 0 {
		var names []string
		for _, u := range cert.ExtKeyUsage {
			if n, ok := extKeyUsages[u]; ok {
				names = append(names, n)
			} else {
				names = append(names, fmt.Sprintf("unknown (%d)", u))
			}
		}
		fmt.Fprintf(w, "%sX509v3 Extended Key Usage:%s\n%s%s\n", head, crit("2.5.29.37"), body, strings.Join(names, ", "))
	}
	if cert.BasicConstraintsValid {
		fmt.Fprintf(w, "%sX509v3 Basic Constraints:%s\n%sCA:%s\n", head, crit("2.5.29.19"), body, strings.ToUpper(fmt.Sprint(cert.IsCA)))
	}
	if len(cert.SubjectKeyId) > 0 {
		fmt.Fprintf(w, "%sX509v3 Subject Key Identifier:\n%s%s\n", head, body, colonHex(cert.SubjectKeyId, true))
	}
	if len(cert.AuthorityKeyId) > 0 {
		fmt.Fprintf(w, "%sX509v3 Authority Key Identifier:\n%skeyid:%s\n", head, body, colonHex(cert.AuthorityKeyId, true))
	}
	var sans []string
	for _, d := range cert.DNSNames {
		sans = append(sans, "DNS:"+d)
	}
	for _, ip := range cert.IPAddresses {
		sans = append(sans, "IP Address:"+ip.String())
	}
	for _, u := range cert.URIs {
		sans = append(sans, "URI:"+u.String())
	}
	if len(sans) > 0 {
		fmt.Fprintf(w, "%sX509v3 Subject Alternative Name:%s\n%s%s\n", head, crit("2.5.29.17"), body, strings.Join(sans, ", "))
	}
}

func colonHex(b []byte, upper bool) string {
	parts := make([]string, len(b))
	for i := range b {
		parts[i] = hex.EncodeToString(b[i : i+1])
		if upper {
			parts[i] = strings.ToUpper(parts[i])
		}
	}
	return strings.Join(parts, ":")
}

// hexBlock writes b as lower-case colon-separated hex, perLine bytes a line, each line
// but the last ending in a colon.
func hexBlock(w io.Writer, indent string, b []byte, perLine int) {
	for i := 0; i < len(b); i += perLine {
		end := min(i+perLine, len(b))
		line := colonHex(b[i:end], false)
		if end < len(b) {
			line += ":"
		}
		fmt.Fprintf(w, "%s%s\n", indent, line)
	}
}
