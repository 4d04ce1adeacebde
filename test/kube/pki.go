package kube

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// authority is a certificate authority kept in memory: it signs the API server's serving
// certificate, the admin client certificate and the certificates of test HTTPS servers.
type authority struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
}

// certValidity is long enough for any test run and short enough to be obviously a test CA.
const certValidity = 7 * 24 * time.Hour

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, fmt.Errorf("generating certificate serial number: %w", err)
	}
	return n, nil
}

// newAuthority makes a self-signed ECDSA P-256 CA named cn.
func newAuthority(cn string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-signing CA %q: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA %q: %w", cn, err)
	}
	return &authority{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// leaf is a certificate and its key, both PEM encoded.
type leaf struct {
	certPEM []byte
	keyPEM  []byte
}

// tlsCertificate returns the leaf as a tls.Certificate.
func (l *leaf) tlsCertificate() (tls.Certificate, error) {
	c, err := tls.X509KeyPair(l.certPEM, l.keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loading key pair: %w", err)
	}
	return c, nil
}

// issue signs a new ECDSA P-256 leaf for subject. With hosts it is a serving certificate for
// those names and IP addresses; client marks it for client authentication.
func (a *authority) issue(subject pkix.Name, hosts []string, client bool) (*leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key for %q: %w", subject.CommonName, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if len(hosts) > 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %q: %w", subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding key for %q: %w", subject.CommonName, err)
	}
	return &leaf{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// clusterPKI is everything the control plane needs, written under dir/pki.
type clusterPKI struct {
	ca      *authority
	serving *leaf // kube-apiserver, kube-controller-manager and kube-scheduler serving cert
	admin   *leaf // client cert in system:masters
	// The aggregation layer's front proxy: its own CA and the client cert the API server
	// presents to extension API servers, as kubeadm sets it up.
	frontProxyCA     *authority
	frontProxyClient *leaf
	saKeyPEM         []byte
	saPubPEM         []byte
	caFile           string
	certFile         string
	keyFile          string
	saKeyFile        string
	saPubFile        string

	frontProxyCAFile, frontProxyCertFile, frontProxyKeyFile string

	// The client certificate the API server presents to kubelets (logs, exec,
	// port-forward), as kubeadm's apiserver-kubelet-client.
	kubeletClientCertFile, kubeletClientKeyFile string
}

// kubeletClientUser is the common name of the API server's client certificate for kubelets.
const kubeletClientUser = "kube-apiserver-kubelet-client"

// adminUser is the user name of the admin client certificate.
const adminUser = "l5d-test-admin"

// frontProxyUser is the common name of the aggregation layer's client certificate.
const frontProxyUser = "front-proxy-client"

// servingHosts are the names and addresses the control plane serving certificate is always
// valid for (Options can add more).
var servingHosts = []string{
	"127.0.0.1", "::1", "localhost", "10.96.0.1",
	"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
}

// newClusterPKI generates the CA, serving (valid for hosts) and admin certificates and the
// service-account signing key pair and writes them under dir.
func newClusterPKI(dir string, hosts []string) (*clusterPKI, error) {
	ca, err := newAuthority("l5d-test-kubernetes-ca")
	if err != nil {
		return nil, err
	}
	serving, err := ca.issue(pkix.Name{CommonName: "kube-apiserver"}, hosts, false)
	if err != nil {
		return nil, err
	}
	admin, err := ca.issue(pkix.Name{CommonName: adminUser, Organization: []string{"system:masters"}}, nil, true)
	if err != nil {
		return nil, err
	}
	frontProxyCA, err := newAuthority("l5d-test-front-proxy-ca")
	if err != nil {
		return nil, err
	}
	frontProxyClient, err := frontProxyCA.issue(pkix.Name{CommonName: frontProxyUser}, nil, true)
	if err != nil {
		return nil, err
	}
	kubeletClient, err := ca.issue(pkix.Name{CommonName: kubeletClientUser, Organization: []string{"system:masters"}}, nil, true)
	if err != nil {
		return nil, err
	}
	// RSA like kubeadm's sa.key, so tokens are RS256 as in a real cluster.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating service-account signing key: %w", err)
	}
	saKeyDER, err := x509.MarshalPKCS8PrivateKey(saKey)
	if err != nil {
		return nil, fmt.Errorf("encoding service-account signing key: %w", err)
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, fmt.Errorf("encoding service-account public key: %w", err)
	}
	p := &clusterPKI{
		ca:        ca,
		serving:   serving,
		admin:     admin,
		saKeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: saKeyDER}),
		saPubPEM:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER}),
		caFile:    filepath.Join(dir, "ca.crt"),
		certFile:  filepath.Join(dir, "serving.crt"),
		keyFile:   filepath.Join(dir, "serving.key"),
		saKeyFile: filepath.Join(dir, "sa.key"),
		saPubFile: filepath.Join(dir, "sa.pub"),

		frontProxyCA:       frontProxyCA,
		frontProxyClient:   frontProxyClient,
		frontProxyCAFile:   filepath.Join(dir, "front-proxy-ca.crt"),
		frontProxyCertFile: filepath.Join(dir, "front-proxy-client.crt"),
		frontProxyKeyFile:  filepath.Join(dir, "front-proxy-client.key"),

		kubeletClientCertFile: filepath.Join(dir, "apiserver-kubelet-client.crt"),
		kubeletClientKeyFile:  filepath.Join(dir, "apiserver-kubelet-client.key"),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating PKI directory: %w", err)
	}
	for path, data := range map[string][]byte{
		p.caFile: ca.certPEM, p.certFile: serving.certPEM, p.keyFile: serving.keyPEM,
		p.saKeyFile: p.saKeyPEM, p.saPubFile: p.saPubPEM,
		p.frontProxyCAFile: frontProxyCA.certPEM, p.frontProxyCertFile: frontProxyClient.certPEM,
		p.frontProxyKeyFile:     frontProxyClient.keyPEM,
		p.kubeletClientCertFile: kubeletClient.certPEM, p.kubeletClientKeyFile: kubeletClient.keyPEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return p, nil
}
