// Package certs creates, encodes and verifies the X.509 material of the mesh's trust
// hierarchy: trust anchors (self-signed roots), identity issuers (intermediate CAs signed by
// an anchor) and workload leaf certificates, all with ECDSA P-256 keys as Linkerd uses.
//
// The shapes follow Linkerd's: anchors and issuers are CAs whose key usages are certificate
// and CRL signing with serverAuth and clientAuth extended usages; issuers are limited to a
// path length of zero; leaves carry their identity as the subject common name and as their
// only DNS SAN, with digital-signature and key-encipherment usages for serverAuth and
// clientAuth. Validity windows are given by the caller (see [ValidFor] for Linkerd's
// clock-skew allowance) and a child's NotAfter never extends past its signer's.
//
// PEM helpers accept and produce the encodings found in Linkerd installs: "CERTIFICATE",
// "CERTIFICATE REQUEST", PKCS#8 "PRIVATE KEY" and SEC 1 "EC PRIVATE KEY". Every parser
// returns an error naming what is wrong with its input and never panics.
package certs
