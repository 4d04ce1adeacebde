package certs

import (
	"os"
	"testing"
)

// seedPEMs returns valid encodings of every kind this package parses, for fuzz corpora.
func seedPEMs(f *testing.F) (bundle, csrDER, csrPEM, pkcs8, sec1 []byte) {
	f.Helper()
	h := newHierarchy(f)
	bundle = EncodeCertificatesPEM(h.anchor.Cert, h.issuer.Cert)
	csrDER, err := NewCSR(h.leafKey, workload)
	if err != nil {
		f.Fatal(err)
	}
	pkcs8, err = EncodePrivateKeyPEM(h.leafKey)
	if err != nil {
		f.Fatal(err)
	}
	sec1, err = EncodeECPrivateKeyPEM(h.leafKey)
	if err != nil {
		f.Fatal(err)
	}
	return bundle, csrDER, EncodeCSRPEM(csrDER), pkcs8, sec1
}

func FuzzParseCertificatesPEM(f *testing.F) {
	bundle, _, csrPEM, pkcs8, _ := seedPEMs(f)
	seed, err := os.ReadFile("testdata/linkerd-install-anchor.pem")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{bundle, seed, csrPEM, pkcs8, bundle[:len(bundle)/2], []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), nil} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificatesPEM(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
		if err == nil {
			// Whatever parsed must survive re-encoding.
			again, err := ParseCertificatesPEM(EncodeCertificatesPEM(certs...))
			if err != nil || len(again) != len(certs) {
				t.Fatalf("re-encoded bundle does not parse: %v", err)
			}
		}
	})
}

func FuzzParseCSR(f *testing.F) {
	_, csrDER, _, _, _ := seedPEMs(f)
	f.Add(csrDER)
	f.Add(csrDER[:len(csrDER)-3])
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := ParseCSR(der)
		if err != nil {
			return
		}
		if name, err := CSRName(csr); err == nil && name == "" {
			t.Fatal("CSRName returned an empty name without error")
		}
	})
}

func FuzzDecodeCSRPEM(f *testing.F) {
	bundle, _, csrPEM, _, _ := seedPEMs(f)
	f.Add(csrPEM)
	f.Add(bundle)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := DecodeCSRPEM(data)
		if err == nil && csr == nil {
			t.Fatal("no error and no request")
		}
	})
}

func FuzzDecodePrivateKeyPEM(f *testing.F) {
	bundle, _, _, pkcs8, sec1 := seedPEMs(f)
	for _, s := range [][]byte{pkcs8, sec1, bundle, pkcs8[:40]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := DecodePrivateKeyPEM(data)
		if err == nil && key == nil {
			t.Fatal("no error and no key")
		}
	})
}
