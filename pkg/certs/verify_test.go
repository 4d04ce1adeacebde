package certs

import (
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"
)

func TestVerifyChain(t *testing.T) {
	h := newHierarchy(t)
	other := newHierarchy(t)
	// An issuer may not sign further CAs: its path length is zero.
	sub, err := h.issuer.NewIssuer("sub.issuer", ValidFor(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	subLeaf, err := sub.IssueLeaf(h.leafKey.Public(), workload, ValidFor(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	anchors := []*x509.Certificate{h.anchor.Cert}
	tests := []struct {
		name          string
		leaf          *x509.Certificate
		intermediates []*x509.Certificate
		anchors       []*x509.Certificate
		at            time.Time
		usage         x509.ExtKeyUsage
		want          string // "" means trusted
	}{
		{"server usage", h.leaf, h.issuer.ChainFor(), anchors, now, x509.ExtKeyUsageServerAuth, ""},
		{"client usage", h.leaf, h.issuer.ChainFor(), anchors, now.Add(23 * time.Hour), x509.ExtKeyUsageClientAuth, ""},
		{"anchor in a bundle", h.leaf, h.issuer.ChainFor(), []*x509.Certificate{other.anchor.Cert, h.anchor.Cert}, now, x509.ExtKeyUsageServerAuth, ""},
		{"code signing usage", h.leaf, h.issuer.ChainFor(), anchors, now, x509.ExtKeyUsageCodeSigning, "incompatible key usage"},
		{"expired", h.leaf, h.issuer.ChainFor(), anchors, now.Add(25 * time.Hour), x509.ExtKeyUsageServerAuth, "expired"},
		{"not yet valid", h.leaf, h.issuer.ChainFor(), anchors, now.Add(-time.Hour), x509.ExtKeyUsageServerAuth, "not yet valid"},
		{"missing intermediate", h.leaf, nil, anchors, now, x509.ExtKeyUsageServerAuth, "unknown authority"},
		{"other anchor", h.leaf, h.issuer.ChainFor(), []*x509.Certificate{other.anchor.Cert}, now, x509.ExtKeyUsageServerAuth, "unknown authority"},
		{"no anchors", h.leaf, h.issuer.ChainFor(), nil, now, x509.ExtKeyUsageServerAuth, "no trust anchors"},
		{"missing leaf", nil, nil, anchors, now, x509.ExtKeyUsageServerAuth, "missing"},
		{"issuer exceeds path length", subLeaf, sub.ChainFor(), anchors, now, x509.ExtKeyUsageServerAuth, "too many intermediates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyChain(tt.leaf, tt.intermediates, tt.anchors, tt.at, tt.usage)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want trusted, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestVerifyIssuer(t *testing.T) {
	h := newHierarchy(t)
	other := newHierarchy(t)
	anchors := []*x509.Certificate{h.anchor.Cert}
	tests := []struct {
		name    string
		issuer  *x509.Certificate
		anchors []*x509.Certificate
		at      time.Time
		want    string
	}{
		{"valid issuer", h.issuer.Cert, anchors, now, ""},
		{"valid issuer near its end", h.issuer.Cert, anchors, h.issuer.Cert.NotAfter, ""},
		{"leaf is not a CA", h.leaf, anchors, now, "is not a CA"},
		{"expired", h.issuer.Cert, anchors, h.issuer.Cert.NotAfter.Add(time.Second), "expired at"},
		{"not yet valid", h.issuer.Cert, anchors, now.Add(-time.Hour), "not valid until"},
		{"signed by another anchor", other.issuer.Cert, anchors, now, "does not chain to the trust anchors"},
		{"missing", nil, anchors, now, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyIssuer(tt.issuer, nil, tt.anchors, tt.at)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want valid issuer, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// The anchor that `linkerd install` generated in seed 003, with the pod annotation value
// recorded next to it.
func TestLinkerdInstallAnchor(t *testing.T) {
	pemText, err := os.ReadFile("testdata/linkerd-install-anchor.pem")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := TrustRootSHA256(pemText), "354fe6f49331e8e03d8fb07808e00a3e145d2661181cbfec7777b41051dc8e22"; got != want {
		t.Errorf("TrustRootSHA256 = %s, want %s (linkerd.io/trust-root-sha256 from the seed)", got, want)
	}
	anchor, err := DecodeCertificatePEM(pemText)
	if err != nil {
		t.Fatal(err)
	}
	if anchor.Subject.CommonName != "identity.linkerd." || !anchor.IsCA {
		t.Errorf("anchor CN %q IsCA %v", anchor.Subject.CommonName, anchor.IsCA)
	}
	inWindow := time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := VerifyIssuer(anchor, nil, []*x509.Certificate{anchor}, inWindow); err != nil {
		t.Errorf("self-signed anchor should verify within its window: %v", err)
	}
	err = VerifyIssuer(anchor, nil, []*x509.Certificate{anchor}, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	if err == nil || !strings.Contains(err.Error(), "expired at 2023-11-05T19:21:29Z") {
		t.Errorf("after 2023-11-05 the anchor should be reported expired, got %v", err)
	}
}
