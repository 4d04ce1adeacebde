package issuer

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/pkg/certs"
)

func TestLoadSchemesAndProblems(t *testing.T) {
	now := time.Now()
	anchor, err := certs.NewTrustAnchor(certs.DefaultAnchorCommonName, certs.ValidFor(now, 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := anchor.NewIssuer("identity.linkerd.cluster.local", certs.ValidFor(now, time.Hour))
	other, _ := anchor.NewIssuer("other", certs.ValidFor(now, time.Hour))
	expired, _ := anchor.NewIssuer("expired", certs.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)})
	rogueAnchor, _ := certs.NewTrustAnchor("rogue", certs.ValidFor(now, time.Hour))
	rogue, _ := rogueAnchor.NewIssuer("rogue", certs.ValidFor(now, time.Hour))
	keyPEM := func(a *certs.Authority) []byte { b, _ := certs.EncodePrivateKeyPEM(a.Key); return b }
	meta := metav1.ObjectMeta{Namespace: "linkerd", Name: DefaultSecretName}
	for _, tc := range []struct {
		name    string
		secret  *corev1.Secret
		wantErr string
	}{
		{"linkerd.io/tls", &corev1.Secret{ObjectMeta: meta, Data: map[string][]byte{"crt.pem": certs.EncodeCertificatesPEM(iss.Cert), "key.pem": keyPEM(iss)}}, ""},
		{"kubernetes.io/tls", &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": certs.EncodeCertificatesPEM(iss.Cert), "tls.key": keyPEM(iss), "ca.crt": certs.EncodeCertificatesPEM(anchor.Cert)}}, ""},
		{"missing key", &corev1.Secret{ObjectMeta: meta, Data: map[string][]byte{"crt.pem": certs.EncodeCertificatesPEM(iss.Cert)}}, `needs "crt.pem" and "key.pem"`},
		{"key of another certificate", &corev1.Secret{ObjectMeta: meta, Data: map[string][]byte{"crt.pem": certs.EncodeCertificatesPEM(iss.Cert), "key.pem": keyPEM(other)}}, "does not match"},
		{"expired", &corev1.Secret{ObjectMeta: meta, Data: map[string][]byte{"crt.pem": certs.EncodeCertificatesPEM(expired.Cert), "key.pem": keyPEM(expired)}}, "not usable"},
		{"not chaining to the anchor", &corev1.Secret{ObjectMeta: meta, Data: map[string][]byte{"crt.pem": certs.EncodeCertificatesPEM(rogue.Cert), "key.pem": keyPEM(rogue)}}, "not usable"},
		{"garbage", &corev1.Secret{ObjectMeta: meta, Data: map[string][]byte{"crt.pem": []byte("nope"), "key.pem": []byte("nope")}}, "not a PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.secret, []*x509.Certificate{anchor.Cert}, now)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), "Secret linkerd/"+DefaultSecretName):
				t.Fatalf("error %q does not name the Secret", err)
			}
		})
	}
}

func TestParseAnchors(t *testing.T) {
	if _, err := ParseAnchors(&corev1.ConfigMap{Data: map[string]string{}}); err == nil || !strings.Contains(err.Error(), TrustRootsKey) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := ParseAnchors(&corev1.ConfigMap{Data: map[string]string{TrustRootsKey: "junk"}}); err == nil {
		t.Fatal("junk anchors accepted")
	}
}
