package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/l5d-go/l5d/pkg/inject"
	"github.com/l5d-go/l5d/test/kube"
)

func TestMain(m *testing.M) { kube.Main(m, kube.Options{}) }

// selfSigned writes a CA-flagged self-signed certificate for 127.0.0.1 and its key, and
// returns the certificate PEM (the webhook's caBundle).
func selfSigned(t *testing.T, dir string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "linkerd-proxy-injector.linkerd.svc"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), crt, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return crt
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestCommand runs the injector command against the real API server: it reads the trust
// anchors from the control plane's ConfigMap, turns native sidecars on from the server
// version (1.34), becomes ready, injects a pod the API server sends it and counts it.
func TestCommand(t *testing.T) {
	c := kube.Shared(t)
	cp := c.Namespace(t)
	anchors, err := os.ReadFile("../../../pkg/inject/testdata/seed-anchors.pem")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, cp, fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: linkerd-identity-trust-roots\ndata:\n  ca-bundle.crt: |\n%s",
		"    "+strings.ReplaceAll(strings.TrimSpace(string(anchors)), "\n", "\n    ")+"\n"))
	dir := t.TempDir()
	caBundle := selfSigned(t, dir)
	addr, adminAddr := freeAddr(t), freeAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", addr, "-admin-addr", adminAddr, "-kubeconfig", c.Kubeconfig(),
			"-tls-cert-file", filepath.Join(dir, "tls.crt"), "-tls-key-file", filepath.Join(dir, "tls.key"),
			"-controller-namespace", cp, "-log-level", "warn"})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v after shutdown", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("run did not return after shutdown")
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := get("http://" + adminAddr + "/ready")
		if code == http.StatusOK {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("injector exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	ns := c.Namespace(t, kube.WithAnnotations(map[string]string{inject.AnnotationInject: "enabled"}))
	c.RegisterMutatingWebhook(t, kube.Webhook{Name: "linkerd-proxy-injector.linkerd.io", URL: "https://" + addr + "/", CABundle: caBundle, Namespaces: []string{ns}})
	pod := c.CreatePod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:1"}}}})
	if len(pod.Spec.InitContainers) != 2 || pod.Spec.InitContainers[1].Name != inject.ProxyContainerName {
		t.Fatalf("init containers %v, want linkerd-init and the native linkerd-proxy", pod.Spec.InitContainers)
	}
	if got, want := pod.Annotations[inject.AnnotationTrustRootSHA256], "354fe6f49331e8e03d8fb07808e00a3e145d2661181cbfec7777b41051dc8e22"; got != want {
		t.Errorf("trust-root-sha256 = %s, want %s (anchors from the ConfigMap)", got, want)
	}
	if _, body := get("http://" + adminAddr + "/metrics"); !strings.Contains(body, `proxy_inject_admission_responses_total{reason="injected",result="injected"}`) {
		t.Errorf("metrics lack the injected response count:\n%s", grep(body, "proxy_inject"))
	}
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestBadFlags(t *testing.T) {
	c := kube.Shared(t)
	dir := t.TempDir()
	selfSigned(t, dir)
	base := []string{"-kubeconfig", c.Kubeconfig(), "-tls-cert-file", filepath.Join(dir, "tls.crt"), "-tls-key-file", filepath.Join(dir, "tls.key")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-native-sidecar", "sometimes"}, "-native-sidecar"},
		{[]string{"-tls-cert-file", "/nonexistent/tls.crt"}, "/nonexistent/tls.crt"},
		{[]string{"-identity-trust-anchors-file", "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
		{[]string{"-controller-namespace", "no-such-namespace"}, "linkerd-identity-trust-roots"},
		{[]string{"-identity-trust-anchors-file", "../../../pkg/inject/testdata/seed-anchors.pem", "-default-inbound-policy", "open"}, "default inbound policy"},
		{[]string{"-proxy-log-format", "xml", "-identity-trust-anchors-file", "../../../pkg/inject/testdata/seed-anchors.pem"}, "proxy log format"},
	} {
		err := run(context.Background(), append(append([]string{}, base...), tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%v) = %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}

// TestMissingRBAC runs the command as a service account without any role: it refuses to
// start and lists what its ClusterRole lacks.
func TestMissingRBAC(t *testing.T) {
	c := kube.Shared(t)
	ns := c.Namespace(t)
	c.CreateServiceAccount(t, ns, "injector")
	token := c.Token(t, ns, "injector", kube.TokenOptions{})
	dir := t.TempDir()
	selfSigned(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), c.CA(), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority: %q}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, c.Host(), filepath.Join(dir, "ca.crt"), token)
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"-kubeconfig", filepath.Join(dir, "kubeconfig"),
		"-tls-cert-file", filepath.Join(dir, "tls.crt"), "-tls-key-file", filepath.Join(dir, "tls.key")})
	if err == nil || !strings.Contains(err.Error(), "RBAC") || !strings.Contains(err.Error(), "replicasets") {
		t.Errorf("run without RBAC = %v, want an error listing the missing permissions", err)
	}
}
