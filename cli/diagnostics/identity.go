package diagnostics

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/l5d-go/l5d/cli/podconn"
	"github.com/l5d-go/l5d/pkg/certs"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
)

// PodCertificate fetches the certificate chain (leaf first) of the proxy of pod ns/pod
// from its admin server's /identity/certificate, through the API server's pods/proxy;
// ok is false when the proxy has no certificate yet (404).
func PodCertificate(ctx context.Context, client kubernetes.Interface, ns, pod string) (chain []*x509.Certificate, ok bool, err error) {
	body, err := podconn.Get(ctx, client, ns, pod, ProxyAdminPort, "identity/certificate")
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	chain, err = ParseCertificateChain(body)
	if err != nil {
		return nil, false, fmt.Errorf("the proxy of pod %s/%s: %w", ns, pod, err)
	}
	return chain, true, nil
}

// ParseCertificateChain parses the PEM chain a proxy's /identity/certificate serves; it
// is an error when there is no certificate in it.
func ParseCertificateChain(body []byte) ([]*x509.Certificate, error) {
	chain, err := certs.ParseCertificatesPEM(body)
	if err != nil {
		return nil, fmt.Errorf("not a PEM certificate chain: %w", err)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("not a PEM certificate chain: no certificate")
	}
	return chain, nil
}
